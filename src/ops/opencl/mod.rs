//! The OpenCL backend: a whole pipeline on a device, with the CPU's exact results.
//!
//! The module is split by job: `device` lists devices and sets PoCL's pinning,
//! `program` builds (and caches) the kernels, `step` is what each op lowers to (the op's
//! `lower` in ops/defs), `kernels` has one typed function per kernel, `buffers` moves
//! images to and from the device, and `exec` runs each step. This file opens a device
//! and runs a pipeline over it.
//!
//! The OpenCL library is loaded at run time (opencl3's `dynamic` feature), so the same
//! binary runs where no OpenCL exists: listing devices then reports that. Kernel sources
//! (kernels/*.cl) are embedded at build time and compiled once per device per process;
//! the compiled program is cached on disk (keyed by source, device and driver) where the
//! platform returns binaries. A pipeline uploads the image once, keeps consecutive ops
//! in device memory, and downloads once; an op without a kernel (or a variant the device
//! cannot reproduce exactly) runs on the CPU at that step. Every kernel is bit-exact with
//! the CPU implementation, which the tests check on PoCL.
//!
//! The same sources serve two kinds of device. On a GPU a work-item handles 16 bytes, so
//! that neighbouring work-items touch neighbouring memory, and images are copied to
//! device memory. On a CPU device (PoCL) the program is built with longer runs per
//! work-item and unaligned vector moves, images are wrapped in place
//! (`CL_MEM_USE_HOST_PTR`) and mapped back instead of copied, and a few algorithms differ
//! where one suits a handful of threads better than thousands (Canny's hysteresis, the
//! resize passes). `Gpu::open_as_gpu` builds the GPU variant on any device, so the tests
//! cover both on PoCL.

mod buffers;
mod device;
mod exec;
mod info;
mod kernels;
mod program;
mod step;

pub use device::{list_devices, pin_cpu_device_threads, DeviceError, DeviceInfo};
pub(crate) use step::Step;

use super::{apply, Op, OpError};
use crate::image::Image;
use crate::item::BackendUsed;
use buffers::DevImage;
use device::{all_devices, cl_err};
use kernels::{Kernels, Target};
use opencl3::command_queue::CommandQueue;
use opencl3::context::Context;
use opencl3::program::Program;
use std::sync::{Arc, Mutex};

/// Opens device `index` once per process and shares it (compiling the kernels once).
pub fn shared(index: usize) -> Result<Arc<Gpu>, DeviceError> {
    static OPENED: Mutex<Vec<(usize, Arc<Gpu>)>> = Mutex::new(Vec::new());
    let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, g)) = opened.iter().find(|(i, _)| *i == index) {
        return Ok(g.clone());
    }
    let g = Arc::new(Gpu::open(index)?);
    opened.push((index, g.clone()));
    Ok(g)
}

/// An opened device with its compiled program, ready to run pipelines.
pub struct Gpu {
    /// What it is.
    pub info: DeviceInfo,
    context: Context,
    queue: CommandQueue,
    /// The device works on host memory (a CPU device, an integrated GPU): images are
    /// wrapped in place (`CL_MEM_USE_HOST_PTR`) and mapped back instead of copied.
    zero_copy: bool,
    /// Choose the algorithms meant for GPUs (many small work-items) over those for CPU
    /// devices (a few long ones) where the two differ: Canny's hysteresis, resize.
    gpu_paths: bool,
    /// Bytes per work-item of the point kernels (SPAN in kernels/common.cl).
    span: usize,
    /// Work-group size for 1-D launches, and the x extent of 2-D ones (y is 1).
    local: usize,
    kernels: Mutex<Kernels>,
    _program: Program,
}

// SAFETY: OpenCL contexts, queues and programs are thread-safe objects; kernels (whose
// arguments are state) are only used under the `kernels` mutex.
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

impl Gpu {
    /// Opens device `index` (see [`list_devices`]) and compiles the kernels.
    pub fn open(index: usize) -> Result<Gpu, DeviceError> {
        Self::open_styled(index, None)
    }

    /// Opens device `index` built and driven as if it were a discrete GPU: 16 bytes per
    /// work-item, aligned-safe vector loads, copies instead of zero-copy, and the GPU
    /// algorithms. Tests use it so that a CPU device covers the GPU code paths too.
    #[doc(hidden)]
    pub fn open_as_gpu(index: usize) -> Result<Gpu, DeviceError> {
        Self::open_styled(index, Some(true))
    }

    fn open_styled(index: usize, gpu_style: Option<bool>) -> Result<Gpu, DeviceError> {
        let devices = all_devices()?;
        if devices.is_empty() {
            return Err(DeviceError::NoDevices);
        }
        let n = devices.len();
        let (info, device) = devices
            .into_iter()
            .nth(index)
            .ok_or(DeviceError::NoSuchDevice { index, count: n })?;
        let context = Context::from_device(&device)
            .map_err(|e| cl_err("cannot create an OpenCL context", e))?;
        #[allow(deprecated)]
        // SAFETY: the context and device are valid; no properties.
        let queue = unsafe { CommandQueue::create(&context, device.id(), 0) }
            .map_err(|e| cl_err("cannot create a command queue", e))?;
        // CPU devices take unaligned vector moves and longer spans (see kernels/common.cl).
        let gpu_style = gpu_style.unwrap_or(info.gpu);
        let program = program::build(&context, &info, gpu_style)?;
        let kernels = Kernels::create(&program)?;
        // Host memory in place on CPU devices and integrated GPUs (not when a CPU device
        // stands in for a discrete GPU).
        let zero_copy = if info.gpu {
            device.host_unified_memory().unwrap_or(false)
        } else {
            !gpu_style
        };
        let local = if gpu_style { 256 } else { 1024 }
            .min(device.max_work_group_size().unwrap_or(1).max(1));
        Ok(Gpu {
            info,
            context,
            queue,
            zero_copy,
            gpu_paths: gpu_style,
            span: if gpu_style { 16 } else { program::CPU_SPAN },
            local,
            kernels: Mutex::new(kernels),
            _program: program,
        })
    }

    /// What the device is.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Whether this device can run `op` on an image of `channels` 8-bit channels exactly
    /// as the CPU does: whether the op lowers to a device step (its `lower`).
    pub fn supports(op: &Op, channels: u8) -> bool {
        op.lower(channels).is_some()
    }

    /// The step for `op` on this image, fitted to its size; `None` where it runs on the
    /// CPU (no kernel, 16 bits, or a size only the CPU handles exactly).
    fn step(
        op: &Op,
        w: usize,
        h: usize,
        channels: u8,
        deep: bool,
    ) -> Result<Option<Step>, RunError> {
        match op.lower(channels) {
            Some(step) if !deep => step.fit(w, h).map_err(|error| RunError::Op {
                op: op.name(),
                error,
            }),
            _ => Ok(None),
        }
    }

    fn target(&self) -> Target<'_> {
        Target {
            queue: &self.queue,
            local: self.local,
        }
    }

    /// Runs `ops` on `img`: on the device where it can, on the CPU elsewhere. Returns the
    /// result and what ran.
    pub fn run(&self, ops: &[Op], img: Image) -> Result<(Image, BackendUsed), RunError> {
        let mut at = At::Host(img);
        let (mut gpu_ops, mut cpu_ops) = (0, 0);
        for op in ops {
            let step = match &at {
                At::Host(i) => {
                    let (w, h) = (i.width as usize, i.height as usize);
                    Self::step(op, w, h, i.channels, i.is_16bit())?
                }
                At::Device(d) => Self::step(op, d.w, d.h, d.cn as u8, false)?,
            };
            at = match step {
                Some(step) => {
                    let dev = match at {
                        At::Device(d) => d,
                        At::Host(h) => self.upload(h)?,
                    };
                    // The kernels (whose arguments are state) are locked for this op's
                    // launches only: CPU steps run rayon jobs, and a rayon thread waiting
                    // in one may pick up another item that needs the device.
                    let kernels = self.kernels.lock().unwrap_or_else(|e| e.into_inner());
                    gpu_ops += 1;
                    At::Device(self.exec(&kernels, step, dev)?)
                }
                None => {
                    let h = match at {
                        At::Device(d) => self.download(d)?,
                        At::Host(h) => h,
                    };
                    let refused = |error| RunError::Op {
                        op: op.name(),
                        error,
                    };
                    cpu_ops += 1;
                    At::Host(apply(op, h).map_err(refused)?)
                }
            };
        }
        let out = match at {
            At::Device(d) => self.download(d)?,
            At::Host(h) => h,
        };
        let backend = match (gpu_ops, cpu_ops) {
            (0, _) => BackendUsed::Cpu,
            (_, 0) => BackendUsed::OpenCl,
            _ => BackendUsed::OpenClAndCpu,
        };
        Ok((out, backend))
    }

    /// Times the kernels of one op alone, without the upload and the download: a wait
    /// before them and one after. `None` when the op would run on the CPU. (The whole
    /// path is [`Gpu::run`], timed by the caller.)
    pub fn kernel_seconds(&self, op: &Op, img: &Image) -> Result<Option<f64>, RunError> {
        let (w, h) = (img.width as usize, img.height as usize);
        let Some(step) = Self::step(op, w, h, img.channels, img.is_16bit())? else {
            return Ok(None);
        };
        let dev = self.upload(img.clone())?;
        self.finish()?;
        let kernels = self.kernels.lock().unwrap_or_else(|e| e.into_inner());
        let t = std::time::Instant::now();
        let out = self.exec(&kernels, step, dev)?;
        self.finish()?;
        let secs = t.elapsed().as_secs_f64();
        drop(out);
        Ok(Some(secs))
    }
}

/// Where a pipeline's image is between two ops.
enum At {
    /// In host memory (before the first device step, or after a CPU step).
    Host(Image),
    /// In device memory.
    Device(DevImage),
}

/// Why a device pipeline stopped.
#[derive(Debug)]
pub enum RunError {
    /// The op itself refused the image (a crop outside it): not the device's fault.
    Op {
        /// The op's name.
        op: &'static str,
        /// Why.
        error: OpError,
    },
    /// The device failed (out of memory, a lost device): the item can run on the CPU.
    Device(String),
}

fn dev_err(what: &str, e: impl std::fmt::Debug) -> RunError {
    RunError::Device(format!("{what}: {e:?}"))
}
