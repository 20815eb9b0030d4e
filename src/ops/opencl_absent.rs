//! The OpenCL backend's surface in a build without the `opencl` feature: no device
//! exists, and every way of asking for one says that this build lacks OpenCL, so
//! `--backend opencl` and `--list-devices` fail with that message and `auto` runs on
//! the CPU.

use super::{Op, OpError};
use crate::image::Image;
use crate::item::BackendUsed;
use std::sync::Arc;

/// Why no device can be used in this build.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The build has no OpenCL.
    #[error("this imgproc was built without OpenCL (cargo feature `opencl`): rebuild it with default features")]
    NotBuiltIn,
}

#[path = "opencl/info.rs"]
mod info;
pub use info::DeviceInfo;

/// No device can be opened in this build, so no value of this type exists.
pub enum Gpu {}

/// Why a device pipeline stopped.
#[derive(Debug)]
pub enum RunError {
    /// The op itself refused the image.
    Op {
        /// The op's name.
        op: &'static str,
        /// Why.
        error: OpError,
    },
    /// The device failed.
    Device(String),
}

/// Nothing to pin without a device driver.
pub fn pin_cpu_device_threads() -> bool {
    false
}

/// Always an error that says this build has no OpenCL.
pub fn list_devices() -> Result<Vec<DeviceInfo>, DeviceError> {
    Err(DeviceError::NotBuiltIn)
}

/// Always an error that says this build has no OpenCL.
pub fn shared(_: usize) -> Result<Arc<Gpu>, DeviceError> {
    Err(DeviceError::NotBuiltIn)
}

impl Gpu {
    /// No op runs on a device in this build.
    pub fn supports(_: &Op, _: u8) -> bool {
        false
    }

    /// What the device is (no value exists).
    pub fn info(&self) -> &DeviceInfo {
        match *self {}
    }

    /// Cannot be called: no `Gpu` exists.
    pub fn run(&self, _: &[Op], _: Image) -> Result<(Image, BackendUsed), RunError> {
        match *self {}
    }

    /// Cannot be called: no `Gpu` exists.
    pub fn kernel_seconds(&self, _: &Op, _: &Image) -> Result<Option<f64>, RunError> {
        match *self {}
    }
}
