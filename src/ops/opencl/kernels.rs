//! One typed host-side function per kernel. Each line of the list below mirrors a
//! `__kernel` signature in kernels/*.cl (buffers as `&Buffer<element>`, scalars as
//! `cl_int`, `cl_uint` or `f32`, in the same order), so a call that passes the wrong
//! kind or count of arguments does not compile, and kernel names are identifiers, not
//! strings. Changing a signature in a .cl file means changing its line here.

use super::device::{cl_err, DeviceError};
use super::{dev_err, RunError};
use opencl3::command_queue::CommandQueue;
use opencl3::kernel::{ExecuteKernel, Kernel};
use opencl3::memory::Buffer;
use opencl3::program::Program;
use opencl3::types::{cl_int, cl_uint};

/// The work-items of one launch: 1-D or 2-D counts, each rounded up to whole
/// work-groups (every kernel checks its range). Groups are `local` wide along x (the
/// device's preferred width, at most the next power of two of the count) and 1 high,
/// unless [`Grid::group_width`] says otherwise.
#[derive(Clone, Copy)]
pub(super) struct Grid<'a> {
    items: &'a [usize],
    group_width: Option<usize>,
}

/// A grid of `items` work-items.
pub(super) fn grid(items: &[usize]) -> Grid<'_> {
    Grid {
        items,
        group_width: None,
    }
}

impl Grid<'_> {
    /// Work-groups `width` wide along x.
    pub(super) fn group_width(self, width: usize) -> Self {
        Grid {
            group_width: Some(width),
            ..self
        }
    }
}

/// Where launches go: the queue and the device's preferred group width.
pub(super) struct Target<'a> {
    pub(super) queue: &'a CommandQueue,
    pub(super) local: usize,
}

/// One argument of a kernel: a buffer, or a scalar of the kernel's C type.
trait KernelArg {
    /// # Safety
    /// The kernel's parameter at this position must have this type.
    unsafe fn set(&self, exec: &mut ExecuteKernel);
}

impl<T> KernelArg for &Buffer<T> {
    unsafe fn set(&self, exec: &mut ExecuteKernel) {
        exec.set_arg(*self);
    }
}

macro_rules! scalar_arg {
    ($($t:ty),*) => {$(
        impl KernelArg for $t {
            unsafe fn set(&self, exec: &mut ExecuteKernel) {
                exec.set_arg(self);
            }
        }
    )*};
}
scalar_arg!(cl_int, cl_uint, f32);

/// Enqueues `kernel` over `grid` with `args`.
fn enqueue(
    t: &Target,
    kernel: &Kernel,
    name: &str,
    grid: Grid,
    args: &[&dyn KernelArg],
) -> Result<(), RunError> {
    let items = grid.items;
    if items.contains(&0) {
        return Ok(());
    }
    let lx = grid
        .group_width
        .unwrap_or_else(|| t.local.min(items[0].next_power_of_two()));
    let mut local = vec![lx];
    local.extend(std::iter::repeat_n(1, items.len() - 1));
    let global: Vec<usize> = items
        .iter()
        .zip(&local)
        .map(|(&n, &l)| n.div_ceil(l) * l)
        .collect();
    let mut exec = ExecuteKernel::new(kernel);
    // SAFETY: the typed functions below pass arguments whose types and order mirror the
    // kernel's signature in kernels/*.cl.
    unsafe {
        for a in args {
            a.set(&mut exec);
        }
        exec.set_global_work_sizes(&global)
            .set_local_work_sizes(&local)
            .enqueue_nd_range(t.queue)
    }
    .map_err(|e| dev_err(&format!("kernel {name}"), e))?;
    Ok(())
}

macro_rules! kernels {
    ($($name:ident($($arg:ident: $ty:ty),* $(,)?);)*) => {
        /// Every kernel of the program, created once per device.
        pub(super) struct Kernels {
            $($name: Kernel,)*
        }

        impl Kernels {
            /// Creates every kernel from the built program.
            pub(super) fn create(program: &Program) -> Result<Kernels, DeviceError> {
                Ok(Kernels {
                    $($name: Kernel::create(program, stringify!($name))
                        .map_err(|e| cl_err(concat!("kernel ", stringify!($name)), e))?,)*
                })
            }

            $(
                #[doc = concat!("Enqueues `", stringify!($name), "` (see kernels/*.cl).")]
                #[allow(clippy::too_many_arguments)]
                pub(super) fn $name(&self, t: &Target, g: Grid, $($arg: $ty),*) -> Result<(), RunError> {
                    enqueue(t, &self.$name, stringify!($name), g, &[$(&$arg),*])
                }
            )*
        }
    };
}

type Bytes<'a> = &'a Buffer<u8>;
type Ints<'a> = &'a Buffer<cl_int>;

kernels! {
    // point.cl
    k_invert(img: Bytes, nbytes: cl_int, cn: cl_int);
    k_add_sat(img: Bytes, nbytes: cl_int, cn: cl_int, amount: cl_int);
    k_threshold(img: Bytes, nbytes: cl_int, cn: cl_int, t: cl_int);
    k_lut(img: Bytes, nbytes: cl_int, cn: cl_int, table: Bytes);
    k_grayscale(src: Bytes, dst: Bytes, n: cl_int, cn: cl_int);
    k_hsv(img: Bytes, w: cl_int, h: cl_int, cn: cl_int, vector_end: cl_int,
          dh: cl_int, ds: cl_int, dv: cl_int, sdiv: Ints, hdiv: Ints);
    // filter.cl
    k_sep_h(src: Bytes, tmp: &Buffer<u16>, w: cl_int, h: cl_int, cn: cl_int,
            k: &Buffer<cl_uint>, ks: cl_int);
    k_sep_v(tmp: &Buffer<u16>, dst: Bytes, w: cl_int, h: cl_int, cn: cl_int,
            k: &Buffer<cl_uint>, ks: cl_int, mode: cl_int, delta: cl_uint, scale: cl_uint);
    k_unsharp(img: Bytes, blurred: Bytes, nbytes: cl_int, cn: cl_int, a: f32, b: f32);
    k_sobel(src: Bytes, dst: Bytes, w: cl_int, h: cl_int, cn: cl_int, dir: cl_int);
    k_median(src: Bytes, dst: Bytes, w: cl_int, h: cl_int, cn: cl_int, k: cl_int,
             net: Ints, nlen: cl_int, size: cl_int);
    k_morph(src: Bytes, dst: Bytes, w: cl_int, h: cl_int, cn: cl_int, k: cl_int,
            dilate: cl_int, horiz: cl_int);
    k_sep_fused(src: Bytes, dst: Bytes, w: cl_int, h: cl_int, cn: cl_int,
                k: &Buffer<cl_uint>, ks: cl_int, mode: cl_int, delta: cl_uint, scale: cl_uint,
                band: cl_int);
    k_erode_fused(src: Bytes, dst: Bytes, w: cl_int, h: cl_int, cn: cl_int, k: cl_int, band: cl_int);
    k_dilate_fused(src: Bytes, dst: Bytes, w: cl_int, h: cl_int, cn: cl_int, k: cl_int, band: cl_int);
    // geometry.cl
    k_flip(src: Bytes, dst: Bytes, w: cl_int, h: cl_int, cn: cl_int, horizontal: cl_int);
    k_rotate(src: Bytes, dst: Bytes, w: cl_int, h: cl_int, cn: cl_int, angle: cl_int);
    k_crop(src: Bytes, dst: Bytes, w: cl_int, cn: cl_int, x0: cl_int, y0: cl_int,
           cw: cl_int, ch: cl_int);
    k_resize_nearest(src: Bytes, dst: Bytes, sw: cl_int, cn: cl_int, dw: cl_int, dh: cl_int,
                     xs: Ints, ys: Ints);
    k_resize_h(src: Bytes, tmp: Ints, sw: cl_int, sh: cl_int, cn: cl_int, dw: cl_int,
               taps: Ints, alpha: Ints, ks: cl_int);
    k_resize_v(tmp: Ints, dst: Bytes, dw: cl_int, dh: cl_int, cn: cl_int,
               rows: Ints, beta: Ints, ks: cl_int, cubic: cl_int);
    k_resize_direct(src: Bytes, dst: Bytes, sw: cl_int, cn: cl_int, dw: cl_int, dh: cl_int,
                    taps: Ints, alpha: Ints, rows: Ints, beta: Ints, ks: cl_int, cubic: cl_int);
    k_resize_area_int(src: Bytes, dst: Bytes, sw: cl_int, cn: cl_int, dw: cl_int, dh: cl_int,
                      fx: cl_int, fy: cl_int);
    // canny.cl
    k_canny_grad(src: Bytes, mag: Ints, dxs: &Buffer<i16>, dys: &Buffer<i16>,
                 w: cl_int, h: cl_int, cn: cl_int, colors: cl_int);
    k_canny_nms(mag: Ints, dxs: &Buffer<i16>, dys: &Buffer<i16>, map: Bytes,
                w: cl_int, h: cl_int, low: cl_int, high: cl_int);
    k_canny_grow(map: Bytes, w: cl_int, h: cl_int, changed: Ints);
    k_canny_trace(map: Bytes, w: cl_int, h: cl_int, band: cl_int, stack: Ints, overflow: Ints);
    k_canny_out(map: Bytes, dst: Bytes, w: cl_int, h: cl_int);
}
