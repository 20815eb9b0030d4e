//! Which backend was asked for ([`BackendChoice`]), and what one item reports, as one
//! type from the worker that ran it to the report: its
//! statistics ([`ItemStats`]) and what ran its ops ([`BackendUsed`]). The pipeline
//! fills it, the scheduler carries it over the wire unchanged, and the report flattens
//! it into each item's record, so a new statistic is one field here.

use serde::{Deserialize, Serialize};

/// Which backend the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendChoice {
    /// Rayon threads only (the default of a [`crate::sched::Setup`] made without one).
    #[default]
    Cpu,
    /// The OpenCL device for every item.
    OpenCl,
    /// The OpenCL device when [`crate::pipeline::auto_uses_device`] says so: a GPU, an image of at least
    /// [`crate::pipeline::AUTO_MIN_MEGAPIXELS`], and an op with real work per pixel.
    Auto,
}

impl BackendChoice {
    /// The name `--backend` takes, and that travels to MPI workers.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Cpu => "cpu",
            BackendChoice::OpenCl => "opencl",
            BackendChoice::Auto => "auto",
        }
    }

    /// The choice named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<BackendChoice> {
        [
            BackendChoice::Cpu,
            BackendChoice::OpenCl,
            BackendChoice::Auto,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }
}

/// What ran an item's ops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendUsed {
    /// Rayon threads.
    #[default]
    #[serde(rename = "cpu")]
    Cpu,
    /// The OpenCL device, every op.
    #[serde(rename = "opencl")]
    OpenCl,
    /// The device, and the CPU for the ops it has no kernel for.
    #[serde(rename = "opencl+cpu")]
    OpenClAndCpu,
    /// The CPU, after a device error sent the item back to it.
    #[serde(rename = "cpu (opencl failed)")]
    CpuAfterDeviceError,
}

impl BackendUsed {
    /// The name reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendUsed::Cpu => "cpu",
            BackendUsed::OpenCl => "opencl",
            BackendUsed::OpenClAndCpu => "opencl+cpu",
            BackendUsed::CpuAfterDeviceError => "cpu (opencl failed)",
        }
    }
}

impl PartialEq<&str> for BackendUsed {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for BackendUsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Statistics of one item.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemStats {
    /// Input width (from the header, or as decoded), if known.
    pub width: Option<u32>,
    /// Input height, if known.
    pub height: Option<u32>,
    /// Input file size.
    pub bytes_in: u64,
    /// Output file size.
    pub bytes_out: u64,
    /// Decoding time.
    pub decode_ms: f64,
    /// Time running the ops.
    pub process_ms: f64,
    /// Encoding time.
    pub encode_ms: f64,
    /// What ran the ops.
    pub backend: BackendUsed,
}

impl ItemStats {
    /// Input megapixels, if the size is known.
    pub fn megapixels(&self) -> Option<f64> {
        Some(megapixels(self.width?, self.height?))
    }
}

/// Megapixels of a `width` x `height` image: the one definition every rate and report
/// uses.
pub fn megapixels(width: u32, height: u32) -> f64 {
    width as f64 * height as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_written_as_the_report_names_them() {
        for b in [
            BackendUsed::Cpu,
            BackendUsed::OpenCl,
            BackendUsed::OpenClAndCpu,
            BackendUsed::CpuAfterDeviceError,
        ] {
            let json = serde_json::to_string(&b).unwrap();
            assert_eq!(json, format!("\"{}\"", b.as_str()));
            assert_eq!(serde_json::from_str::<BackendUsed>(&json).unwrap(), b);
        }
    }

    #[test]
    fn error_kinds_are_written_as_the_report_names_them() {
        use crate::error::ErrorKind::*;
        for k in [Io, Decode, Unsupported, Limits, Operation, Encode, Panic] {
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{k}\""));
        }
    }
}
