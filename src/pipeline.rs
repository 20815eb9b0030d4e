//! The item pipeline: one input's bytes in, the encoded output's bytes out.
//!
//! This is a pure function of its arguments: it reads no files, writes nothing and
//! knows nothing of threads or ranks. The single-process runner, the distributed
//! workers and the tests all call it, so they cannot disagree about results.

use crate::codec::{self, DecodeOptions, EncodeOptions};
use crate::error::ItemError;
use crate::ops::{self, Op};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

/// Everything needed to process one input, independent of where its bytes come from.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemSpec {
    /// The operations, applied in order.
    pub ops: Vec<Op>,
    /// Decoding limits and orientation.
    pub decode: DecodeOptions,
    /// Output format and quality.
    pub encode: EncodeOptions,
}

/// Milliseconds spent in each stage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Decoding.
    pub decode_ms: f64,
    /// Running the ops.
    pub process_ms: f64,
    /// Encoding.
    pub encode_ms: f64,
}

/// The result of a successful item.
#[derive(Clone, Debug)]
pub struct ItemOutput {
    /// The encoded output file.
    pub bytes: Vec<u8>,
    /// Input width as stored.
    pub width: u32,
    /// Input height as stored.
    pub height: u32,
    /// Frames processed (more than one for animations).
    pub frames: usize,
    /// Stage timings.
    pub timings: Timings,
    /// What ran the ops: "cpu".
    pub backend: &'static str,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Decodes `input`, runs `spec.ops` on every frame and encodes the result.
pub fn process_item(spec: &ItemSpec, input: &[u8]) -> Result<ItemOutput, ItemError> {
    let t = Instant::now();
    let decoded = codec::decode(input, &spec.decode)?;
    let decode_ms = ms(t);

    let t = Instant::now();
    let mut frames = Vec::with_capacity(decoded.frames.len());
    for mut frame in decoded.frames {
        for op in &spec.ops {
            frame.image = ops::apply(op, frame.image).map_err(|e| ItemError::Op {
                op: op.name().to_string(),
                message: e.0,
            })?;
        }
        frames.push(frame);
    }
    let process_ms = ms(t);

    let t = Instant::now();
    let n = frames.len();
    let bytes = codec::encode(frames, &spec.encode)?;
    let encode_ms = ms(t);
    Ok(ItemOutput {
        bytes,
        width: decoded.width,
        height: decoded.height,
        frames: n,
        timings: Timings {
            decode_ms,
            process_ms,
            encode_ms,
        },
        backend: "cpu",
    })
}

/// [`process_item`], with a panic anywhere inside (a decoder bug, say) turned into an
/// [`ItemError::Panic`] for this item instead of taking the process down.
pub fn process_item_guarded(spec: &ItemSpec, input: &[u8]) -> Result<ItemOutput, ItemError> {
    match catch_unwind(AssertUnwindSafe(|| process_item(spec, input))) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(ItemError::Panic(msg))
        }
    }
}
