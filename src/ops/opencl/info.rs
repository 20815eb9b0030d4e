//! What `--list-devices` shows of a device; shared with the build without OpenCL, whose
//! listing is always empty.

/// One OpenCL device as listed by `--list-devices`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Index across all platforms, as `--device N` takes it.
    pub index: usize,
    /// Platform name.
    pub platform: String,
    /// Device name.
    pub name: String,
    /// True for a GPU.
    pub gpu: bool,
    /// Driver version.
    pub driver: String,
}
