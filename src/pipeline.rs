//! The item pipeline: one input's bytes in, the encoded output's bytes out.
//!
//! This is a pure function of its arguments: it reads no files, writes nothing and
//! knows nothing of threads or ranks. The single-process runner, the distributed
//! workers and the tests all call it, so they cannot disagree about results.

use crate::codec::{self, DecodeOptions, EncodeOptions, OutputFormat};
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

#[derive(serde::Serialize, serde::Deserialize)]
struct WireSpec {
    ops: Vec<String>,
    format: String,
    quality: u8,
    max_pixels: u64,
    max_alloc: u64,
    auto_orient: bool,
}

impl ItemSpec {
    /// The spec as text, for sending to another rank.
    pub fn to_wire(&self) -> String {
        let format = OutputFormat::ALL
            .iter()
            .find(|(_, f)| *f == self.encode.format)
            .map(|(n, _)| n.to_string())
            .unwrap_or_default();
        let w = WireSpec {
            ops: self.ops.iter().map(Op::to_text).collect(),
            format,
            quality: self.encode.quality,
            max_pixels: self.decode.max_pixels,
            max_alloc: self.decode.max_alloc,
            auto_orient: self.decode.auto_orient,
        };
        serde_json::to_string(&w).unwrap_or_default()
    }

    /// Reads a spec made by [`ItemSpec::to_wire`].
    pub fn from_wire(text: &str) -> Result<ItemSpec, String> {
        let w: WireSpec = serde_json::from_str(text).map_err(|e| format!("bad item spec: {e}"))?;
        let ops = w
            .ops
            .iter()
            .map(|o| ops::parse_op_str(o).map_err(|e| format!("bad op {o:?} in item spec: {e:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        let format = OutputFormat::from_name(&w.format)
            .ok_or_else(|| format!("bad format {:?} in item spec", w.format))?;
        Ok(ItemSpec {
            ops,
            decode: DecodeOptions {
                max_pixels: w.max_pixels,
                max_alloc: w.max_alloc,
                auto_orient: w.auto_orient,
            },
            encode: EncodeOptions {
                format,
                quality: w.quality,
            },
        })
    }
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
    let caught =
        crate::guard::item_scope(|| catch_unwind(AssertUnwindSafe(|| process_item(spec, input))));
    match caught {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_survive_the_wire() {
        let spec = ItemSpec {
            ops: vec![
                ops::parse_op_str("blur:sigma=1.5,ksize=0").unwrap(),
                ops::parse_op_str("custom_processing").unwrap(),
            ],
            decode: DecodeOptions {
                max_pixels: 1234,
                max_alloc: 99,
                auto_orient: false,
            },
            encode: EncodeOptions {
                format: OutputFormat::WebP,
                quality: 77,
            },
        };
        assert_eq!(ItemSpec::from_wire(&spec.to_wire()).unwrap(), spec);
        assert!(ItemSpec::from_wire("{}").is_err());
    }
}
