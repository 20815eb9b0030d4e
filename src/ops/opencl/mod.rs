//! The OpenCL backend: a whole pipeline on a device, with the CPU's exact results.
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

use super::{apply, filter, geometry, point, Op, OpError, SobelDir};
use crate::image::Image;
use opencl3::command_queue::CommandQueue;
use opencl3::context::Context;
use opencl3::device::{Device, CL_DEVICE_TYPE_ALL, CL_DEVICE_TYPE_GPU};
use opencl3::kernel::{ExecuteKernel, Kernel};
use opencl3::memory::{Buffer, ClMem, CL_MAP_READ, CL_MEM_READ_WRITE, CL_MEM_USE_HOST_PTR};
use opencl3::platform::get_platforms;
use opencl3::program::Program;
use opencl3::types::{cl_int, cl_uint, CL_BLOCKING, CL_NON_BLOCKING};
use std::collections::HashMap;
use std::sync::Mutex;

/// The kernel sources, one file per op family.
const SOURCES: &[(&str, &str)] = &[
    ("common.cl", include_str!("../../../kernels/common.cl")),
    ("point.cl", include_str!("../../../kernels/point.cl")),
    ("filter.cl", include_str!("../../../kernels/filter.cl")),
    ("geometry.cl", include_str!("../../../kernels/geometry.cl")),
    ("canny.cl", include_str!("../../../kernels/canny.cl")),
];

const KERNELS: &[&str] = &[
    "k_invert",
    "k_add_sat",
    "k_threshold",
    "k_lut",
    "k_grayscale",
    "k_hsv",
    "k_sep_h",
    "k_sep_v",
    "k_unsharp",
    "k_sobel",
    "k_median",
    "k_morph",
    "k_sep_fused",
    "k_erode_fused",
    "k_dilate_fused",
    "k_flip",
    "k_rotate",
    "k_crop",
    "k_resize_nearest",
    "k_resize_h",
    "k_resize_v",
    "k_resize_direct",
    "k_resize_area_int",
    "k_canny_grad",
    "k_canny_nms",
    "k_canny_grow",
    "k_canny_trace",
    "k_canny_out",
];

/// Largest window of the one-pass filter kernels (FUSED_MAX in kernels/filter.cl).
const FUSED_MAX: usize = 15;

/// Rows per work-item of the one-pass filter kernels.
const FUSED_BAND: usize = 32;

/// Bytes per work-item of the point kernels on CPU devices.
const CPU_SPAN: usize = 256;

/// OpenCL source for `medianK_vec` (K = 3, 5, 7): the median of each lane of a 16-byte
/// chunk over a K x K window, border replicate rows, through the CPU's selection network
/// written out as straight-line min/max, which the device compiler keeps in registers.
fn median_source() -> String {
    let mut s = String::from("// Generated from filter::median_network.\n");
    for k in [3usize, 5, 7] {
        let (size, net) = filter::median_network(k * k);
        let a = k / 2;
        s += &format!(
            "inline uchar16 median{k}_vec(__global const uchar* src, int rb, int h, int y, int cn, int xb) {{\n\
             \x20   uchar16 v[{size}], t;\n\
             \x20   for (int j = 0; j < {k}; j++) {{\n\
             \x20       __global const uchar* r = src + replicate(y + j - {a}, h) * rb + xb - {a} * cn;\n\
             \x20       for (int i = 0; i < {k}; i++) v[j * {k} + i] = LOAD16(uchar, r + i * cn);\n\
             \x20   }}\n\
             \x20   for (int m = {n}; m < {size}; m++) v[m] = (uchar16)255;\n",
            n = k * k
        );
        for (x, y) in net {
            s += &format!(
                "    t = min(v[{x}], v[{y}]); v[{y}] = max(v[{x}], v[{y}]); v[{x}] = t;\n"
            );
        }
        s += &format!("    return v[{}];\n}}\n", k * k / 2);
    }
    s
}

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

fn cl_err(what: &str, e: impl std::fmt::Debug) -> String {
    format!("{what}: {e:?}")
}

fn all_devices() -> Result<Vec<(DeviceInfo, Device)>, String> {
    let platforms = get_platforms().map_err(|e| {
        format!("no OpenCL platform found ({e:?}): install an OpenCL driver (for a CPU device: apt-get install ocl-icd-libopencl1 pocl-opencl-icd)")
    })?;
    let mut out = Vec::new();
    for p in platforms {
        let pname = p.name().unwrap_or_default();
        for id in p.get_devices(CL_DEVICE_TYPE_ALL).unwrap_or_default() {
            let d = Device::new(id);
            let info = DeviceInfo {
                index: out.len(),
                platform: pname.clone(),
                name: d.name().unwrap_or_default(),
                gpu: d
                    .dev_type()
                    .map(|t| t & CL_DEVICE_TYPE_GPU != 0)
                    .unwrap_or(false),
                driver: d.driver_version().unwrap_or_default(),
            };
            out.push((info, d));
        }
    }
    Ok(out)
}

/// Asks PoCL, the usual CPU OpenCL driver, to pin its worker threads (thread i to CPU
/// i) by setting `POCL_AFFINITY=1`, where that is safe: the user has not set it, and
/// this process may run on every CPU, numbered 0 to n-1 (PoCL aborts if a pin is not
/// allowed, as under a cgroup cpuset or an MPI launcher's binding). On the 2-core
/// machine behind the README's figures, pinning made point ops on 1 to 4 MP images up
/// to twice as fast, and far steadier.
/// Other drivers ignore the variable. Returns whether it was set.
///
/// Call it first in `main`, while the process has one thread: setting the environment
/// races with other threads reading it, and PoCL reads it when it starts its threads.
pub fn pin_cpu_device_threads() -> bool {
    if std::env::var_os("POCL_AFFINITY").is_some() {
        return false;
    }
    // SAFETY: sysconf and sched_getaffinity only write into the set passed to them.
    let (online, configured, allowed) = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let ok = libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        let allowed: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| ok == 0 && libc::CPU_ISSET(c, &set))
            .collect();
        (
            libc::sysconf(libc::_SC_NPROCESSORS_ONLN) as i64,
            libc::sysconf(libc::_SC_NPROCESSORS_CONF) as i64,
            allowed,
        )
    };
    let max_threads = std::env::var("POCL_MAX_PTHREAD_COUNT").ok();
    if !pinning_is_safe(online, configured, max_threads.as_deref(), &allowed) {
        return false;
    }
    std::env::set_var("POCL_AFFINITY", "1");
    true
}

/// Whether PoCL may pin thread i to CPU i for every thread it starts: all CPUs online,
/// this process allowed on exactly CPUs 0..n-1, and no more threads asked for than CPUs.
fn pinning_is_safe(
    online: i64,
    configured: i64,
    max_threads: Option<&str>,
    allowed: &[usize],
) -> bool {
    let n = allowed.len();
    let threads_fit = max_threads.is_none_or(|m| m.trim().parse::<usize>().is_ok_and(|m| m <= n));
    n > 0
        && online == n as i64
        && configured == n as i64
        && allowed.iter().enumerate().all(|(i, &c)| i == c)
        && threads_fit
}

/// Opens device `index` once per process and shares it (compiling the kernels once).
pub fn shared(index: usize) -> Result<std::sync::Arc<Gpu>, String> {
    static OPENED: Mutex<Vec<(usize, std::sync::Arc<Gpu>)>> = Mutex::new(Vec::new());
    let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, g)) = opened.iter().find(|(i, _)| *i == index) {
        return Ok(g.clone());
    }
    let g = std::sync::Arc::new(Gpu::open(index)?);
    opened.push((index, g.clone()));
    Ok(g)
}

/// Every OpenCL device of every platform; an error says what is missing.
pub fn list_devices() -> Result<Vec<DeviceInfo>, String> {
    Ok(all_devices()?.into_iter().map(|(i, _)| i).collect())
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
    kernels: Mutex<HashMap<&'static str, Kernel>>,
    _program: Program,
}

// SAFETY: OpenCL contexts, queues and programs are thread-safe objects; kernels (whose
// arguments are state) are only used under the `kernels` mutex.
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

fn cache_path(info: &DeviceInfo, source: &str, options: &str) -> Option<std::path::PathBuf> {
    use std::hash::{Hash, Hasher};
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache")))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        source,
        options,
        &info.platform,
        &info.name,
        &info.driver,
        env!("CARGO_PKG_VERSION"),
    )
        .hash(&mut h);
    Some(
        base.join("imgproc")
            .join("opencl")
            .join(format!("{:016x}.bin", h.finish())),
    )
}

impl Gpu {
    /// Opens device `index` (see [`list_devices`]) and compiles the kernels.
    pub fn open(index: usize) -> Result<Gpu, String> {
        Self::open_styled(index, None)
    }

    /// Opens device `index` built and driven as if it were a discrete GPU: 16 bytes per
    /// work-item, aligned-safe vector loads, copies instead of zero-copy, and the GPU
    /// algorithms. Tests use it so that a CPU device covers the GPU code paths too.
    #[doc(hidden)]
    pub fn open_as_gpu(index: usize) -> Result<Gpu, String> {
        Self::open_styled(index, Some(true))
    }

    fn open_styled(index: usize, gpu_style: Option<bool>) -> Result<Gpu, String> {
        let devices = all_devices()?;
        if devices.is_empty() {
            return Err("the OpenCL platforms report no device".into());
        }
        let n = devices.len();
        let (info, device) = devices.into_iter().nth(index).ok_or_else(|| {
            format!("no OpenCL device {index}: there are {n} (see imgproc --list-devices)")
        })?;
        let context = Context::from_device(&device)
            .map_err(|e| cl_err("cannot create an OpenCL context", e))?;
        #[allow(deprecated)]
        // SAFETY: the context and device are valid; no properties.
        let queue = unsafe { CommandQueue::create(&context, device.id(), 0) }
            .map_err(|e| cl_err("cannot create a command queue", e))?;
        let mut parts: Vec<String> = SOURCES.iter().map(|(_, s)| s.to_string()).collect();
        parts.insert(1, median_source());
        let source = parts.join("\n");
        // CPU devices take unaligned vector moves and longer spans (see kernels/common.cl).
        let gpu_style = gpu_style.unwrap_or(info.gpu);
        let span = if gpu_style { 16 } else { CPU_SPAN };
        let options = if gpu_style {
            String::new()
        } else {
            format!("-DIMGPROC_UNALIGNED -DSPAN={span}")
        };
        let options = options.as_str();
        let cached = cache_path(&info, &source, options);
        let from_cache = cached
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bin| Program::create_and_build_from_binary(&context, &[&bin], options).ok());
        let program = match from_cache {
            Some(p) => p,
            None => {
                let p = Program::create_and_build_from_source(&context, &source, options).map_err(
                    |log| format!("the OpenCL kernels did not build on {}: {log}", info.name),
                )?;
                if let (Some(path), Ok(bins)) = (&cached, p.get_binaries()) {
                    if let Some(bin) = bins.first().filter(|b| !b.is_empty()) {
                        let _ = path.parent().map(std::fs::create_dir_all);
                        let _ = crate::output::write_atomic(path, bin);
                    }
                }
                p
            }
        };
        let mut kernels = HashMap::new();
        for &name in KERNELS {
            let k =
                Kernel::create(&program, name).map_err(|e| cl_err(&format!("kernel {name}"), e))?;
            kernels.insert(name, k);
        }
        let gpu_paths = gpu_style;
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
            gpu_paths,
            span,
            local,
            kernels: Mutex::new(kernels),
            _program: program,
        })
    }

    /// Whether this device can run `op` on an image of `channels` 8-bit channels exactly
    /// as the CPU does.
    pub fn supports(op: &Op, channels: u8) -> bool {
        match *op {
            Op::Grayscale => channels >= 3,
            Op::Hsv { .. } => channels >= 3,
            Op::Equalize => false,
            Op::BoxBlur { ksize } => ksize * ksize <= 256,
            Op::Median { ksize } => ksize <= 7,
            Op::Resize { filter, .. } => !matches!(filter, geometry::Filter::Lanczos3),
            _ => true,
        }
    }

    /// Runs `ops` on `img`: on the device where it can, on the CPU elsewhere. Returns the
    /// result and what ran: "opencl", "opencl+cpu" or "cpu".
    pub fn run(&self, ops: &[Op], img: Image) -> Result<(Image, &'static str), RunError> {
        let mut on_device: Option<DevImage> = None;
        let mut host = Some(img);
        let (mut gpu_ops, mut cpu_ops) = (0, 0);
        for op in ops {
            let (w, h, ch, deep) = match (&host, &on_device) {
                (Some(i), _) => (
                    i.width as usize,
                    i.height as usize,
                    i.channels,
                    i.is_16bit(),
                ),
                (None, Some(d)) => (d.w, d.h, d.cn as u8, false),
                (None, None) => unreachable!("an image is always on one side"),
            };
            let planned = if Self::supports(op, ch) && !deep {
                self.plan(op, w, h)?
            } else {
                None
            };
            match planned {
                Some(plan) => {
                    let dev = match on_device.take() {
                        Some(d) => d,
                        None => self.upload(host.take().expect("host image"))?,
                    };
                    // The kernels (whose arguments are state) are locked for this op's
                    // launches only: CPU steps run rayon jobs, and a rayon thread waiting
                    // in one may pick up another item that needs the device.
                    let kernels = self.kernels.lock().unwrap_or_else(|e| e.into_inner());
                    on_device = Some(self.apply(&kernels, plan, dev)?);
                    gpu_ops += 1;
                }
                None => {
                    let h = match on_device.take() {
                        Some(d) => self.download(d)?,
                        None => host.take().expect("host image"),
                    };
                    host = Some(apply(op, h).map_err(RunError::Op)?);
                    cpu_ops += 1;
                }
            }
        }
        let out = match on_device {
            Some(d) => self.download(d)?,
            None => host.expect("host image"),
        };
        let backend = match (gpu_ops, cpu_ops) {
            (0, _) => "cpu",
            (_, 0) => "opencl",
            _ => "opencl+cpu",
        };
        Ok((out, backend))
    }

    /// Times the kernels of one op alone, without the upload and the download: a wait
    /// before them and one after. `None` when the op would run on the CPU. (The whole
    /// path is [`Gpu::run`], timed by the caller.)
    pub fn kernel_seconds(&self, op: &Op, img: &Image) -> Result<Option<f64>, RunError> {
        if !Self::supports(op, img.channels) || img.is_16bit() {
            return Ok(None);
        }
        let Some(plan) = self.plan(op, img.width as usize, img.height as usize)? else {
            return Ok(None);
        };
        let dev = self.upload(img.clone())?;
        self.finish()?;
        let kernels = self.kernels.lock().unwrap_or_else(|e| e.into_inner());
        let t = std::time::Instant::now();
        let out = self.apply(&kernels, plan, dev)?;
        self.finish()?;
        let secs = t.elapsed().as_secs_f64();
        drop(out);
        Ok(Some(secs))
    }
}

/// Why a device pipeline stopped.
#[derive(Debug)]
pub enum RunError {
    /// The op itself refused the image (a crop outside it): not the device's fault.
    Op(OpError),
    /// The device failed (out of memory, a lost device): the item can run on the CPU.
    Device(String),
}

fn dev_err(what: &str, e: impl std::fmt::Debug) -> RunError {
    RunError::Device(format!("{what}: {e:?}"))
}

/// Host memory wrapped by a zero-copy buffer. Dropping it first waits for the queue, so
/// that a kernel still running after an error never writes into freed memory.
struct HostMemory {
    data: Vec<u8>,
    queue: opencl3::types::cl_command_queue,
}

impl Drop for HostMemory {
    fn drop(&mut self) {
        // Cheap when the queue is idle, as it is everywhere but on an error path.
        let _ = opencl3::command_queue::finish(self.queue);
    }
}

/// An 8-bit image in device memory.
struct DevImage {
    /// Declared first so that it is released before the host memory it may wrap.
    buf: Buffer<u8>,
    /// The host memory behind `buf` on zero-copy devices (at least one byte long).
    host: Option<HostMemory>,
    w: usize,
    h: usize,
    cn: usize,
}

/// One op, resolved against the current image size, ready to enqueue.
enum Plan {
    Point {
        kernel: &'static str,
        extra: Option<i32>,
    },
    Lut([u8; 256]),
    Gray,
    Hsv {
        shift: [i32; 3],
    },
    Gauss {
        k: Vec<u32>,
    },
    Box {
        k: usize,
        delta: u32,
        scale: u32,
    },
    Sharpen {
        k: Vec<u32>,
        a: f32,
        b: f32,
    },
    Sobel(i32),
    Median(usize),
    Morph {
        k: usize,
        dilate: bool,
        iterations: u32,
    },
    Canny {
        low: i32,
        high: i32,
    },
    Flip(bool),
    Rotate(u32),
    Crop {
        x: usize,
        y: usize,
        w: usize,
        h: usize,
    },
    Resize {
        dw: usize,
        dh: usize,
        plan: geometry::ResizePlan,
    },
}

impl Gpu {
    /// Resolves `op` for a `w` x `h` image; `None` when it runs on the CPU.
    fn plan(&self, op: &Op, w: usize, h: usize) -> Result<Option<Plan>, RunError> {
        Ok(Some(match *op {
            Op::Invert => Plan::Point {
                kernel: "k_invert",
                extra: None,
            },
            Op::Brighten { amount } => Plan::Point {
                kernel: "k_add_sat",
                extra: Some(amount as i32),
            },
            Op::Darken { amount } => Plan::Point {
                kernel: "k_add_sat",
                extra: Some(-(amount as i32)),
            },
            Op::Threshold { value } => Plan::Point {
                kernel: "k_threshold",
                extra: Some(value.floor() as i32),
            },
            Op::Gamma { gamma } => Plan::Lut(point::gamma_lut(gamma)),
            Op::Contrast { factor } => Plan::Lut(point::contrast_lut(factor)),
            Op::Grayscale => Plan::Gray,
            Op::Hsv {
                hue,
                saturation,
                value,
            } => Plan::Hsv {
                shift: [hue, saturation, value],
            },
            Op::Blur { ksize, sigma } => {
                let n = filter::gaussian_ksize(ksize, sigma);
                Plan::Gauss {
                    k: filter::gaussian_kernel_q8(n as usize, sigma),
                }
            }
            Op::BoxBlur { ksize } => {
                let (delta, scale) = filter::box_fixed_point(ksize * ksize);
                Plan::Box {
                    k: ksize as usize,
                    delta,
                    scale,
                }
            }
            Op::Sharpen { sigma, amount } => Plan::Sharpen {
                k: filter::gaussian_kernel_q8(filter::ksize_for_sigma(sigma) as usize, sigma),
                a: (1.0 + amount) as f32,
                b: (-amount) as f32,
            },
            Op::Sobel { direction } => Plan::Sobel(match direction {
                SobelDir::X => 0,
                SobelDir::Y => 1,
                SobelDir::Xy => 2,
            }),
            Op::Median { ksize } => Plan::Median(ksize as usize),
            Op::Erode { ksize, iterations } => Plan::Morph {
                k: ksize as usize,
                dilate: false,
                iterations,
            },
            Op::Dilate { ksize, iterations } => Plan::Morph {
                k: ksize as usize,
                dilate: true,
                iterations,
            },
            Op::Canny { low, high } => {
                let (mut lo, mut hi) = (low.floor() as i32, high.floor() as i32);
                if lo > hi {
                    std::mem::swap(&mut lo, &mut hi);
                }
                Plan::Canny { low: lo, high: hi }
            }
            Op::Flip { horizontal } => Plan::Flip(horizontal),
            Op::Rotate { angle } => Plan::Rotate(angle),
            Op::Crop {
                x,
                y,
                width,
                height,
            } => {
                geometry::check_crop(w as u32, h as u32, x, y, width, height)
                    .map_err(RunError::Op)?;
                Plan::Crop {
                    x: x as usize,
                    y: y as usize,
                    w: width as usize,
                    h: height as usize,
                }
            }
            Op::Resize {
                width,
                height,
                scale,
                filter,
            } => {
                let (dw, dh) = geometry::target_size(w as u32, h as u32, width, height, scale)
                    .map_err(RunError::Op)?;
                if (dw as usize, dh as usize) == (w, h) {
                    return Ok(None);
                }
                let plan = geometry::resize_plan(w, h, dw as usize, dh as usize, filter);
                if matches!(plan, geometry::ResizePlan::CpuOnly) {
                    return Ok(None);
                }
                Plan::Resize {
                    dw: dw as usize,
                    dh: dh as usize,
                    plan,
                }
            }
            Op::Equalize => return Ok(None),
        }))
    }

    fn buffer<T>(&self, n: usize) -> Result<Buffer<T>, RunError> {
        // SAFETY: a fresh buffer of n elements with no host pointer.
        unsafe {
            Buffer::<T>::create(
                &self.context,
                CL_MEM_READ_WRITE,
                n.max(1),
                std::ptr::null_mut(),
            )
        }
        .map_err(|e| dev_err("cannot allocate device memory", e))
    }

    fn buffer_from<T: Copy>(&self, data: &[T]) -> Result<Buffer<T>, RunError> {
        let mut b = self.buffer::<T>(data.len())?;
        if !data.is_empty() {
            // SAFETY: the buffer holds data.len() elements; the write is blocking.
            unsafe {
                self.queue
                    .enqueue_write_buffer(&mut b, CL_BLOCKING, 0, data, &[])
            }
            .map_err(|e| dev_err("upload", e))?;
        }
        Ok(b)
    }

    /// A device image holding `data` (w x h x cn bytes): wrapped in place on zero-copy
    /// devices, copied to device memory elsewhere.
    fn wrap(&self, mut data: Vec<u8>, w: usize, h: usize, cn: usize) -> Result<DevImage, RunError> {
        if !self.zero_copy {
            return Ok(DevImage {
                buf: self.buffer_from(&data)?,
                host: None,
                w,
                h,
                cn,
            });
        }
        if data.is_empty() {
            data.push(0);
        }
        // SAFETY: `data` outlives the buffer: both move into the DevImage, whose `buf` is
        // released first, and the Vec's heap block never moves while it is not resized.
        let buf = unsafe {
            Buffer::<u8>::create(
                &self.context,
                CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR,
                data.len(),
                data.as_mut_ptr().cast(),
            )
        }
        .map_err(|e| dev_err("cannot wrap host memory", e))?;
        Ok(DevImage {
            buf,
            host: Some(HostMemory {
                data,
                queue: self.queue.get(),
            }),
            w,
            h,
            cn,
        })
    }

    /// A new device image for a kernel's output.
    fn image(&self, w: usize, h: usize, cn: usize) -> Result<DevImage, RunError> {
        if self.zero_copy {
            self.wrap(vec![0u8; w * h * cn], w, h, cn)
        } else {
            Ok(DevImage {
                buf: self.buffer::<u8>(w * h * cn)?,
                host: None,
                w,
                h,
                cn,
            })
        }
    }

    fn upload(&self, img: Image) -> Result<DevImage, RunError> {
        let (w, h, cn) = (
            img.width as usize,
            img.height as usize,
            img.channels as usize,
        );
        let data = match img.samples {
            crate::image::Samples::U8(v) => v,
            crate::image::Samples::U16(_) => {
                return Err(RunError::Device("16-bit images stay on the CPU".into()))
            }
        };
        self.wrap(data, w, h, cn)
    }

    fn download(&self, d: DevImage) -> Result<Image, RunError> {
        let len = d.w * d.h * d.cn;
        let DevImage {
            buf,
            host,
            w,
            h,
            cn,
        } = d;
        let out = match host {
            Some(mut memory) => {
                // Mapping makes the kernels' writes visible in `data` (the mapped pointer
                // is `data` itself for a CL_MEM_USE_HOST_PTR buffer).
                let mut ptr = std::ptr::null_mut();
                // SAFETY: the buffer is `memory.data.len()` bytes; the map, the unmap and
                // the finish below complete before the data is read.
                unsafe {
                    self.queue.enqueue_map_buffer(
                        &buf,
                        CL_NON_BLOCKING,
                        CL_MAP_READ,
                        0,
                        memory.data.len(),
                        &mut ptr,
                        &[],
                    )
                }
                .map_err(|e| dev_err("map", e))?;
                // SAFETY: `ptr` came from the map above.
                unsafe { self.queue.enqueue_unmap_mem_object(buf.get(), ptr, &[]) }
                    .map_err(|e| dev_err("unmap", e))?;
                self.queue.finish().map_err(|e| dev_err("finish", e))?;
                drop(buf);
                // Only now, with the queue idle and the buffer gone, the memory is ours.
                let mut data = std::mem::take(&mut memory.data);
                data.truncate(len);
                data
            }
            None => {
                let mut out = vec![0u8; len];
                if len > 0 {
                    // SAFETY: `out` has exactly the buffer's size; the read is blocking.
                    unsafe {
                        self.queue
                            .enqueue_read_buffer(&buf, CL_BLOCKING, 0, &mut out, &[])
                    }
                    .map_err(|e| dev_err("download", e))?;
                }
                out
            }
        };
        Ok(Image::from_u8(w as u32, h as u32, cn as u8, out))
    }
}

/// Arguments of one kernel launch.
enum Arg<'a> {
    U8(&'a Buffer<u8>),
    I32(&'a Buffer<i32>),
    U32(&'a Buffer<u32>),
    U16(&'a Buffer<u16>),
    I16(&'a Buffer<i16>),
    Int(cl_int),
    Uint(cl_uint),
    Float(f32),
}

impl Gpu {
    /// Enqueues `name` over `items` work-items (1-D or 2-D); the count is rounded up to
    /// whole work-groups, and every kernel checks its range.
    fn launch(
        &self,
        kernels: &HashMap<&'static str, Kernel>,
        name: &str,
        items: &[usize],
        args: &[Arg],
    ) -> Result<(), RunError> {
        self.launch_local(kernels, name, items, None, args)
    }

    /// [`Gpu::launch`] with an explicit work-group width.
    fn launch_local(
        &self,
        kernels: &HashMap<&'static str, Kernel>,
        name: &str,
        items: &[usize],
        width: Option<usize>,
        args: &[Arg],
    ) -> Result<(), RunError> {
        let kernel = kernels
            .get(name)
            .ok_or_else(|| RunError::Device(format!("kernel {name} missing")))?;
        if items.contains(&0) {
            return Ok(());
        }
        let lx = width.unwrap_or_else(|| self.local.min(items[0].next_power_of_two()));
        let mut local = vec![lx];
        local.extend(std::iter::repeat_n(1, items.len() - 1));
        let global: Vec<usize> = items
            .iter()
            .zip(&local)
            .map(|(&n, &l)| n.div_ceil(l) * l)
            .collect();
        let mut exec = ExecuteKernel::new(kernel);
        // SAFETY: the argument types and order match the kernel's signature in kernels/*.cl.
        unsafe {
            for a in args {
                match a {
                    Arg::U8(b) => exec.set_arg(*b),
                    Arg::I32(b) => exec.set_arg(*b),
                    Arg::U32(b) => exec.set_arg(*b),
                    Arg::U16(b) => exec.set_arg(*b),
                    Arg::I16(b) => exec.set_arg(*b),
                    Arg::Int(v) => exec.set_arg(v),
                    Arg::Uint(v) => exec.set_arg(v),
                    Arg::Float(v) => exec.set_arg(v),
                };
            }
            exec.set_global_work_sizes(&global)
                .set_local_work_sizes(&local)
                .enqueue_nd_range(&self.queue)
        }
        .map_err(|e| dev_err(&format!("kernel {name}"), e))?;
        Ok(())
    }

    /// Reads a one-element flag buffer and clears it: whether a kernel set it.
    fn read_flag(&self, flag: &mut Buffer<i32>) -> Result<bool, RunError> {
        let mut v = [0i32];
        // SAFETY: a one-element buffer; both transfers are blocking.
        unsafe {
            self.queue
                .enqueue_read_buffer(flag, CL_BLOCKING, 0, &mut v, &[])
                .map_err(|e| dev_err("download", e))?;
            self.queue
                .enqueue_write_buffer(flag, CL_BLOCKING, 0, &[0i32], &[])
                .map_err(|e| dev_err("upload", e))?;
        }
        Ok(v[0] != 0)
    }

    fn finish(&self) -> Result<(), RunError> {
        self.queue.finish().map_err(|e| dev_err("finish", e))
    }

    fn apply(
        &self,
        k: &HashMap<&'static str, Kernel>,
        plan: Plan,
        d: DevImage,
    ) -> Result<DevImage, RunError> {
        use Arg::*;
        let (w, h, cn) = (d.w, d.h, d.cn);
        let n = w * h;
        let nbytes = n * cn;
        let (wi, hi, ci) = (w as i32, h as i32, cn as i32);
        // Grid of the row kernels: (runs of `span` bytes of a row, rows).
        let rows = [(w * cn).div_ceil(self.span), h];
        let out = match plan {
            Plan::Point { kernel, extra } => {
                let mut args = vec![U8(&d.buf), Int(nbytes as i32), Int(ci)];
                if let Some(v) = extra {
                    args.push(Int(v));
                }
                self.launch(k, kernel, &[nbytes.div_ceil(self.span)], &args)?;
                // In place and without tables: nothing to free, so no wait here; the
                // next op or the download waits (an in-order queue).
                return Ok(d);
            }
            Plan::Lut(table) => {
                let t = self.buffer_from(&table)?;
                self.launch(
                    k,
                    "k_lut",
                    &[nbytes.div_ceil(self.span)],
                    &[U8(&d.buf), Int(nbytes as i32), Int(ci), U8(&t)],
                )?;
                self.finish()?;
                d
            }
            Plan::Gray => {
                let o = self.image(w, h, cn - 2)?;
                self.launch(
                    k,
                    "k_grayscale",
                    &[n.div_ceil(16)],
                    &[U8(&d.buf), U8(&o.buf), Int(n as i32), Int(ci)],
                )?;
                o
            }
            Plan::Hsv { shift } => {
                let (sdiv, hdiv) = point::hsv_table_values();
                let (sb, hb) = (self.buffer_from(&sdiv)?, self.buffer_from(&hdiv)?);
                let vector_end = (w / point::HSV_BLOCK * point::HSV_BLOCK) as i32;
                self.launch(
                    k,
                    "k_hsv",
                    &[w.div_ceil(16), h],
                    &[
                        U8(&d.buf),
                        Int(wi),
                        Int(hi),
                        Int(ci),
                        Int(vector_end),
                        Int(shift[0]),
                        Int(shift[1]),
                        Int(shift[2]),
                        I32(&sb),
                        I32(&hb),
                    ],
                )?;
                self.finish()?;
                d
            }
            Plan::Gauss { k: kern } => self.separable(k, &d, &kern, 0, 0, 0)?,
            Plan::Box {
                k: size,
                delta,
                scale,
            } => self.separable(k, &d, &vec![1u32; size], 1, delta, scale)?,
            Plan::Sharpen { k: kern, a, b } => {
                let blurred = self.separable(k, &d, &kern, 0, 0, 0)?;
                self.launch(
                    k,
                    "k_unsharp",
                    &[nbytes.div_ceil(self.span)],
                    &[
                        U8(&d.buf),
                        U8(&blurred.buf),
                        Int(nbytes as i32),
                        Int(ci),
                        Float(a),
                        Float(b),
                    ],
                )?;
                self.finish()?;
                d
            }
            Plan::Sobel(dir) => {
                let o = self.image(w, h, cn)?;
                self.launch(
                    k,
                    "k_sobel",
                    &rows,
                    &[U8(&d.buf), U8(&o.buf), Int(wi), Int(hi), Int(ci), Int(dir)],
                )?;
                o
            }
            Plan::Median(size) => {
                let (padded, net) = filter::median_network(size * size);
                let pairs: Vec<i32> = net
                    .iter()
                    .flat_map(|&(a, b)| [a as i32, b as i32])
                    .collect();
                let nb = self.buffer_from(&pairs)?;
                let o = self.image(w, h, cn)?;
                self.launch(
                    k,
                    "k_median",
                    &rows,
                    &[
                        U8(&d.buf),
                        U8(&o.buf),
                        Int(wi),
                        Int(hi),
                        Int(ci),
                        Int(size as i32),
                        I32(&nb),
                        Int(net.len() as i32),
                        Int(padded as i32),
                    ],
                )?;
                self.finish()?;
                o
            }
            Plan::Morph {
                k: size,
                dilate,
                iterations,
            } => {
                let mut cur = d;
                // Windows over FUSED_MAX go across into `t`, then down.
                let t = if size > FUSED_MAX {
                    Some(self.buffer::<u8>(nbytes)?)
                } else {
                    None
                };
                for _ in 0..iterations {
                    let o = self.image(w, h, cn)?;
                    match &t {
                        None => self.launch(
                            k,
                            if dilate {
                                "k_dilate_fused"
                            } else {
                                "k_erode_fused"
                            },
                            &[(w * cn).div_ceil(16), h.div_ceil(FUSED_BAND)],
                            &[
                                U8(&cur.buf),
                                U8(&o.buf),
                                Int(wi),
                                Int(hi),
                                Int(ci),
                                Int(size as i32),
                                Int(FUSED_BAND as i32),
                            ],
                        )?,
                        Some(t) => {
                            for (src, dst, horiz) in [(&cur.buf, t, 1), (t, &o.buf, 0)] {
                                self.launch(
                                    k,
                                    "k_morph",
                                    &rows,
                                    &[
                                        U8(src),
                                        U8(dst),
                                        Int(wi),
                                        Int(hi),
                                        Int(ci),
                                        Int(size as i32),
                                        Int(dilate as i32),
                                        Int(horiz),
                                    ],
                                )?;
                            }
                        }
                    }
                    self.finish()?;
                    cur = o;
                }
                cur
            }
            Plan::Canny { low, high } => {
                let colors: i32 = if cn >= 3 { 3 } else { 1 };
                let grid = [w, h];
                let mw = (w + 2) * (h + 2);
                let mag = self.buffer_from(&vec![0i32; mw])?;
                let dx = self.buffer::<i16>(n)?;
                let dy = self.buffer::<i16>(n)?;
                let map = self.buffer_from(&vec![1u8; mw])?;
                self.launch(
                    k,
                    "k_canny_grad",
                    &[w.div_ceil(16), h],
                    &[
                        U8(&d.buf),
                        I32(&mag),
                        I16(&dx),
                        I16(&dy),
                        Int(wi),
                        Int(hi),
                        Int(ci),
                        Int(colors),
                    ],
                )?;
                self.launch(
                    k,
                    "k_canny_nms",
                    &grid,
                    &[
                        I32(&mag),
                        I16(&dx),
                        I16(&dy),
                        U8(&map),
                        Int(wi),
                        Int(hi),
                        Int(low),
                        Int(high),
                    ],
                )?;
                let mut flag = self.buffer_from(&[0i32])?;
                let mut repeat = self.gpu_paths;
                if !repeat {
                    // CPU devices: trace in one pass; passes only if a stack overflowed.
                    let band = 64;
                    let stack = self.buffer::<i32>(n)?;
                    self.launch_local(
                        k,
                        "k_canny_trace",
                        &[h.div_ceil(band)],
                        Some(1),
                        &[
                            U8(&map),
                            Int(wi),
                            Int(hi),
                            Int(band as i32),
                            I32(&stack),
                            I32(&flag),
                        ],
                    )?;
                    repeat = self.read_flag(&mut flag)?;
                }
                while repeat {
                    // GPUs: passes until one changes nothing, two per look at the flag
                    // (a round trip to the host costs about as much as a pass).
                    for _ in 0..2 {
                        self.launch(
                            k,
                            "k_canny_grow",
                            &[w.div_ceil(16), h],
                            &[U8(&map), Int(wi), Int(hi), I32(&flag)],
                        )?;
                    }
                    repeat = self.read_flag(&mut flag)?;
                }
                let o = self.image(w, h, 1)?;
                self.launch(
                    k,
                    "k_canny_out",
                    &grid,
                    &[U8(&map), U8(&o.buf), Int(wi), Int(hi)],
                )?;
                o
            }
            Plan::Flip(horizontal) => {
                let o = self.image(w, h, cn)?;
                let grid = if horizontal {
                    [w.div_ceil(16), h]
                } else {
                    rows
                };
                self.launch(
                    k,
                    "k_flip",
                    &grid,
                    &[
                        U8(&d.buf),
                        U8(&o.buf),
                        Int(wi),
                        Int(hi),
                        Int(ci),
                        Int(horizontal as i32),
                    ],
                )?;
                o
            }
            Plan::Rotate(angle) => {
                let (ow, oh) = if angle == 180 { (w, h) } else { (h, w) };
                let o = self.image(ow, oh, cn)?;
                self.launch(
                    k,
                    "k_rotate",
                    &[ow, oh],
                    &[
                        U8(&d.buf),
                        U8(&o.buf),
                        Int(wi),
                        Int(hi),
                        Int(ci),
                        Int(angle as i32),
                    ],
                )?;
                o
            }
            Plan::Crop { x, y, w: cw, h: ch } => {
                let o = self.image(cw, ch, cn)?;
                self.launch(
                    k,
                    "k_crop",
                    &[(cw * cn).div_ceil(self.span), ch],
                    &[
                        U8(&d.buf),
                        U8(&o.buf),
                        Int(wi),
                        Int(ci),
                        Int(x as i32),
                        Int(y as i32),
                        Int(cw as i32),
                        Int(ch as i32),
                    ],
                )?;
                o
            }
            Plan::Resize { dw, dh, plan } => {
                let o = self.image(dw, dh, cn)?;
                let (dwi, dhi) = (dw as i32, dh as i32);
                match plan {
                    geometry::ResizePlan::Nearest { xs, ys } => {
                        let (xb, yb) = (self.buffer_from(&xs)?, self.buffer_from(&ys)?);
                        self.launch(
                            k,
                            "k_resize_nearest",
                            &[dw, dh],
                            &[
                                U8(&d.buf),
                                U8(&o.buf),
                                Int(wi),
                                Int(ci),
                                Int(dwi),
                                Int(dhi),
                                I32(&xb),
                                I32(&yb),
                            ],
                        )?;
                        self.finish()?;
                    }
                    geometry::ResizePlan::Separable {
                        taps,
                        alpha,
                        rows,
                        beta,
                        ks,
                        cubic,
                    } => {
                        let (tb, ab) = (self.buffer_from(&taps)?, self.buffer_from(&alpha)?);
                        let (rb, bb) = (self.buffer_from(&rows)?, self.buffer_from(&beta)?);
                        // CPU devices: one pass, no intermediate buffer (measured 1.5-2x
                        // faster on PoCL at 24 MP); GPUs: the two passes.
                        if !self.gpu_paths {
                            self.launch(
                                k,
                                "k_resize_direct",
                                &[dw, dh],
                                &[
                                    U8(&d.buf),
                                    U8(&o.buf),
                                    Int(wi),
                                    Int(ci),
                                    Int(dwi),
                                    Int(dhi),
                                    I32(&tb),
                                    I32(&ab),
                                    I32(&rb),
                                    I32(&bb),
                                    Int(ks as i32),
                                    Int(cubic as i32),
                                ],
                            )?;
                            self.finish()?;
                            return Ok(o);
                        }
                        let tmp = self.buffer::<i32>(dw * h * cn)?;
                        self.launch(
                            k,
                            "k_resize_h",
                            &[dw, h],
                            &[
                                U8(&d.buf),
                                I32(&tmp),
                                Int(wi),
                                Int(hi),
                                Int(ci),
                                Int(dwi),
                                I32(&tb),
                                I32(&ab),
                                Int(ks as i32),
                            ],
                        )?;
                        self.launch(
                            k,
                            "k_resize_v",
                            &[dw, dh],
                            &[
                                I32(&tmp),
                                U8(&o.buf),
                                Int(dwi),
                                Int(dhi),
                                Int(ci),
                                I32(&rb),
                                I32(&bb),
                                Int(ks as i32),
                                Int(cubic as i32),
                            ],
                        )?;
                        self.finish()?;
                    }
                    geometry::ResizePlan::AreaInt { fx, fy } => {
                        self.launch(
                            k,
                            "k_resize_area_int",
                            &[dw, dh],
                            &[
                                U8(&d.buf),
                                U8(&o.buf),
                                Int(wi),
                                Int(ci),
                                Int(dwi),
                                Int(dhi),
                                Int(fx as i32),
                                Int(fy as i32),
                            ],
                        )?;
                    }
                    geometry::ResizePlan::CpuOnly => unreachable!("planned for the CPU"),
                }
                o
            }
        };
        self.finish()?;
        Ok(out)
    }

    /// Both passes of a separable filter with the same integer kernel `kern` across and
    /// down (see k_sep_v for `mode`, `delta` and `scale`).
    fn separable(
        &self,
        k: &HashMap<&'static str, Kernel>,
        d: &DevImage,
        kern: &[u32],
        mode: i32,
        delta: u32,
        scale: u32,
    ) -> Result<DevImage, RunError> {
        use Arg::*;
        let (w, h, cn) = (d.w, d.h, d.cn);
        let o = self.image(w, h, cn)?;
        let kb = self.buffer_from(kern)?;
        let (wi, hi, ci) = (w as i32, h as i32, cn as i32);
        if kern.len() <= FUSED_MAX {
            self.launch(
                k,
                "k_sep_fused",
                &[(w * cn).div_ceil(16), h.div_ceil(FUSED_BAND)],
                &[
                    U8(&d.buf),
                    U8(&o.buf),
                    Int(wi),
                    Int(hi),
                    Int(ci),
                    U32(&kb),
                    Int(kern.len() as i32),
                    Int(mode),
                    Uint(delta),
                    Uint(scale),
                    Int(FUSED_BAND as i32),
                ],
            )?;
            self.finish()?;
            return Ok(o);
        }
        let tmp = self.buffer::<u16>(w * h * cn)?;
        let rows = [(w * cn).div_ceil(self.span), h];
        self.launch(
            k,
            "k_sep_h",
            &rows,
            &[
                U8(&d.buf),
                U16(&tmp),
                Int(wi),
                Int(hi),
                Int(ci),
                U32(&kb),
                Int(kern.len() as i32),
            ],
        )?;
        self.launch(
            k,
            "k_sep_v",
            &rows,
            &[
                U16(&tmp),
                U8(&o.buf),
                Int(wi),
                Int(hi),
                Int(ci),
                U32(&kb),
                Int(kern.len() as i32),
                Int(mode),
                Uint(delta),
                Uint(scale),
            ],
        )?;
        self.finish()?;
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::pinning_is_safe;

    #[test]
    fn pocl_threads_are_pinned_only_where_every_pin_is_allowed() {
        let all4 = [0, 1, 2, 3];
        assert!(pinning_is_safe(4, 4, None, &all4));
        assert!(pinning_is_safe(4, 4, Some("4"), &all4));
        assert!(pinning_is_safe(4, 4, Some("2"), &all4));
        // More threads asked for than CPUs, or a value PoCL may read differently.
        assert!(!pinning_is_safe(4, 4, Some("8"), &all4));
        assert!(!pinning_is_safe(4, 4, Some("many"), &all4));
        // Bound to some CPUs (a cpuset, an MPI binding), or not starting at CPU 0.
        assert!(!pinning_is_safe(4, 4, None, &[0, 1]));
        assert!(!pinning_is_safe(4, 4, None, &[1, 2, 3]));
        assert!(!pinning_is_safe(4, 4, None, &[0, 1, 3, 4]));
        // CPUs offline, or the affinity unknown.
        assert!(!pinning_is_safe(3, 4, None, &[0, 1, 2]));
        assert!(!pinning_is_safe(4, 4, None, &[]));
    }
}
