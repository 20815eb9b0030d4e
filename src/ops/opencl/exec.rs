//! Running device steps: one function per kind of step, each enqueuing its kernels
//! through the typed functions of `kernels` and returning the device image that holds
//! the result. Point steps work in place and do not wait; the others wait for their
//! kernels before temporary buffers are released.

use super::buffers::DevImage;
use super::kernels::{grid, Kernels, Target};
use super::step::Step;
use super::{Gpu, RunError};
use crate::ops::geometry::ResizePlan;
use crate::ops::{median, point};

/// Largest window of the one-pass filter kernels (FUSED_MAX in kernels/filter.cl).
const FUSED_MAX: usize = 15;

/// Rows per work-item of the one-pass filter kernels.
const FUSED_BAND: usize = 32;

/// An image's size as the kernels take it.
struct Dims {
    w: usize,
    h: usize,
    cn: usize,
    wi: i32,
    hi: i32,
    ci: i32,
    /// Bytes of the image.
    nbytes: usize,
}

fn dims(d: &DevImage) -> Dims {
    Dims {
        w: d.w,
        h: d.h,
        cn: d.cn,
        wi: d.w as i32,
        hi: d.h as i32,
        ci: d.cn as i32,
        nbytes: d.w * d.h * d.cn,
    }
}

impl Gpu {
    /// Runs one fitted step on `d`.
    pub(super) fn exec(&self, k: &Kernels, step: Step, d: DevImage) -> Result<DevImage, RunError> {
        let t = &self.target();
        let z = dims(&d);
        // Work-items of the point kernels: runs of `span` bytes.
        let spans = [z.nbytes.div_ceil(self.span)];
        let (n, ci) = (z.nbytes as i32, z.ci);
        let out = match step {
            // In place and without tables: nothing to free, so no wait here; the next
            // op or the download waits (an in-order queue).
            Step::Invert => return k.k_invert(t, grid(&spans), &d.buf, n, ci).map(|_| d),
            Step::AddSat(v) => return k.k_add_sat(t, grid(&spans), &d.buf, n, ci, v).map(|_| d),
            Step::Threshold(v) => {
                return k.k_threshold(t, grid(&spans), &d.buf, n, ci, v).map(|_| d)
            }
            Step::Lut(table) => {
                let tb = self.buffer_from(&table)?;
                k.k_lut(t, grid(&spans), &d.buf, n, ci, &tb)?;
                self.finish()?;
                d
            }
            Step::Gray => {
                let px = z.w * z.h;
                let o = self.image(z.w, z.h, z.cn - 2)?;
                k.k_grayscale(t, grid(&[px.div_ceil(16)]), &d.buf, &o.buf, px as i32, ci)?;
                o
            }
            Step::Hsv(shift) => self.hsv(k, t, d, shift)?,
            Step::Gauss(kern) => self.separable(k, t, &d, &kern, 0, 0, 0)?,
            Step::Box { size, delta, scale } => {
                self.separable(k, t, &d, &vec![1u32; size], 1, delta, scale)?
            }
            Step::Sharpen { kernel, a, b } => {
                let blurred = self.separable(k, t, &d, &kernel, 0, 0, 0)?;
                k.k_unsharp(t, grid(&spans), &d.buf, &blurred.buf, n, ci, a, b)?;
                self.finish()?;
                d
            }
            Step::Sobel(dir) => {
                let o = self.image(z.w, z.h, z.cn)?;
                let rows = self.rows(&z);
                k.k_sobel(t, grid(&rows), &d.buf, &o.buf, z.wi, z.hi, ci, dir)?;
                o
            }
            Step::Median(size) => self.median(k, t, d, size)?,
            Step::Morph {
                size,
                dilate,
                iterations,
            } => self.morph(k, t, d, size, dilate, iterations)?,
            Step::Canny { low, high } => self.canny(k, t, d, low, high)?,
            Step::Flip(horizontal) => {
                let o = self.image(z.w, z.h, z.cn)?;
                let g = if horizontal {
                    [z.w.div_ceil(16), z.h]
                } else {
                    self.rows(&z)
                };
                let hz = horizontal as i32;
                k.k_flip(t, grid(&g), &d.buf, &o.buf, z.wi, z.hi, ci, hz)?;
                o
            }
            Step::Rotate(angle) => {
                let (ow, oh) = if angle == 180 { (z.w, z.h) } else { (z.h, z.w) };
                let o = self.image(ow, oh, z.cn)?;
                let a = angle as i32;
                k.k_rotate(t, grid(&[ow, oh]), &d.buf, &o.buf, z.wi, z.hi, ci, a)?;
                o
            }
            Step::Crop {
                x,
                y,
                width,
                height,
            } => {
                let (cw, ch) = (width as usize, height as usize);
                let o = self.image(cw, ch, z.cn)?;
                let g = [(cw * z.cn).div_ceil(self.span), ch];
                let (xi, yi, cwi, chi) = (x as i32, y as i32, cw as i32, ch as i32);
                k.k_crop(t, grid(&g), &d.buf, &o.buf, z.wi, ci, xi, yi, cwi, chi)?;
                o
            }
            Step::ResizeTo { dw, dh, plan } => self.resize(k, t, d, dw, dh, plan)?,
            Step::Resize { .. } => {
                return Err(RunError::Device(
                    "a resize step ran before it was fitted".into(),
                ))
            }
        };
        self.finish()?;
        Ok(out)
    }

    /// The grid of the row kernels: (runs of `span` bytes of a row, rows).
    fn rows(&self, z: &Dims) -> [usize; 2] {
        [(z.w * z.cn).div_ceil(self.span), z.h]
    }

    fn hsv(
        &self,
        k: &Kernels,
        t: &Target,
        d: DevImage,
        shift: [i32; 3],
    ) -> Result<DevImage, RunError> {
        let z = dims(&d);
        let (sdiv, hdiv) = point::hsv_table_values();
        let (sb, hb) = (self.buffer_from(&sdiv)?, self.buffer_from(&hdiv)?);
        let vector_end = (z.w / point::HSV_BLOCK * point::HSV_BLOCK) as i32;
        let [dh, ds, dv] = shift;
        let g = [z.w.div_ceil(16), z.h];
        k.k_hsv(
            t,
            grid(&g),
            &d.buf,
            z.wi,
            z.hi,
            z.ci,
            vector_end,
            dh,
            ds,
            dv,
            &sb,
            &hb,
        )?;
        self.finish()?;
        Ok(d)
    }

    /// Both passes of a separable filter with the same integer kernel `kern` across and
    /// down (see k_sep_v for `mode`, `delta` and `scale`).
    #[allow(clippy::too_many_arguments)]
    fn separable(
        &self,
        k: &Kernels,
        t: &Target,
        d: &DevImage,
        kern: &[u32],
        mode: i32,
        delta: u32,
        scale: u32,
    ) -> Result<DevImage, RunError> {
        let z = dims(d);
        let o = self.image(z.w, z.h, z.cn)?;
        let kb = self.buffer_from(kern)?;
        let ks = kern.len() as i32;
        let (wi, hi, ci) = (z.wi, z.hi, z.ci);
        if kern.len() <= FUSED_MAX {
            let g = [(z.w * z.cn).div_ceil(16), z.h.div_ceil(FUSED_BAND)];
            let band = FUSED_BAND as i32;
            let (src, dst) = (&d.buf, &o.buf);
            k.k_sep_fused(
                t,
                grid(&g),
                src,
                dst,
                wi,
                hi,
                ci,
                &kb,
                ks,
                mode,
                delta,
                scale,
                band,
            )?;
            self.finish()?;
            return Ok(o);
        }
        let tmp = self.buffer::<u16>(z.nbytes)?;
        let rows = self.rows(&z);
        k.k_sep_h(t, grid(&rows), &d.buf, &tmp, wi, hi, ci, &kb, ks)?;
        k.k_sep_v(
            t,
            grid(&rows),
            &tmp,
            &o.buf,
            wi,
            hi,
            ci,
            &kb,
            ks,
            mode,
            delta,
            scale,
        )?;
        self.finish()?;
        Ok(o)
    }

    fn median(
        &self,
        k: &Kernels,
        t: &Target,
        d: DevImage,
        size: usize,
    ) -> Result<DevImage, RunError> {
        let z = dims(&d);
        let (padded, net) = median::median_network(size * size);
        let pairs: Vec<i32> = net
            .iter()
            .flat_map(|&(a, b)| [a as i32, b as i32])
            .collect();
        let nb = self.buffer_from(&pairs)?;
        let o = self.image(z.w, z.h, z.cn)?;
        let rows = self.rows(&z);
        let (si, nl, pi) = (size as i32, net.len() as i32, padded as i32);
        k.k_median(
            t,
            grid(&rows),
            &d.buf,
            &o.buf,
            z.wi,
            z.hi,
            z.ci,
            si,
            &nb,
            nl,
            pi,
        )?;
        self.finish()?;
        Ok(o)
    }

    fn morph(
        &self,
        k: &Kernels,
        t: &Target,
        d: DevImage,
        size: usize,
        dilate: bool,
        iterations: u32,
    ) -> Result<DevImage, RunError> {
        let z = dims(&d);
        let (wi, hi, ci, si) = (z.wi, z.hi, z.ci, size as i32);
        // Windows over FUSED_MAX go across into `tmp`, then down.
        let tmp = if size > FUSED_MAX {
            Some(self.buffer::<u8>(z.nbytes)?)
        } else {
            None
        };
        let mut cur = d;
        for _ in 0..iterations {
            let o = self.image(z.w, z.h, z.cn)?;
            match &tmp {
                None => {
                    let g = [(z.w * z.cn).div_ceil(16), z.h.div_ceil(FUSED_BAND)];
                    let band = FUSED_BAND as i32;
                    let fused = if dilate {
                        Kernels::k_dilate_fused
                    } else {
                        Kernels::k_erode_fused
                    };
                    fused(k, t, grid(&g), &cur.buf, &o.buf, wi, hi, ci, si, band)?;
                }
                Some(tmp) => {
                    let (g, di) = (self.rows(&z), dilate as i32);
                    k.k_morph(t, grid(&g), &cur.buf, tmp, wi, hi, ci, si, di, 1)?;
                    k.k_morph(t, grid(&g), tmp, &o.buf, wi, hi, ci, si, di, 0)?;
                }
            }
            self.finish()?;
            cur = o;
        }
        Ok(cur)
    }

    fn canny(
        &self,
        k: &Kernels,
        t: &Target,
        d: DevImage,
        low: i32,
        high: i32,
    ) -> Result<DevImage, RunError> {
        let z = dims(&d);
        let (w, h, wi, hi) = (z.w, z.h, z.wi, z.hi);
        let colors: i32 = if z.cn >= 3 { 3 } else { 1 };
        let mw = (w + 2) * (h + 2);
        let mag = self.buffer_from(&vec![0i32; mw])?;
        let dx = self.buffer::<i16>(w * h)?;
        let dy = self.buffer::<i16>(w * h)?;
        let map = self.buffer_from(&vec![1u8; mw])?;
        let runs = [w.div_ceil(16), h];
        k.k_canny_grad(t, grid(&runs), &d.buf, &mag, &dx, &dy, wi, hi, z.ci, colors)?;
        k.k_canny_nms(t, grid(&[w, h]), &mag, &dx, &dy, &map, wi, hi, low, high)?;
        let mut flag = self.buffer_from(&[0i32])?;
        let mut repeat = self.gpu_paths;
        if !repeat {
            // CPU devices: trace in one pass; passes only if a stack overflowed.
            let band = 64;
            let stack = self.buffer::<i32>(w * h)?;
            let bands = [h.div_ceil(band)];
            let g = grid(&bands).group_width(1);
            k.k_canny_trace(t, g, &map, wi, hi, band as i32, &stack, &flag)?;
            repeat = self.read_flag(&mut flag)?;
        }
        while repeat {
            // GPUs: passes until one changes nothing, two per look at the flag (a
            // round trip to the host costs about as much as a pass).
            for _ in 0..2 {
                k.k_canny_grow(t, grid(&runs), &map, wi, hi, &flag)?;
            }
            repeat = self.read_flag(&mut flag)?;
        }
        let o = self.image(w, h, 1)?;
        k.k_canny_out(t, grid(&[w, h]), &map, &o.buf, wi, hi)?;
        Ok(o)
    }

    fn resize(
        &self,
        k: &Kernels,
        t: &Target,
        d: DevImage,
        dw: usize,
        dh: usize,
        plan: ResizePlan,
    ) -> Result<DevImage, RunError> {
        let z = dims(&d);
        let o = self.image(dw, dh, z.cn)?;
        let (dwi, dhi, wi, ci) = (dw as i32, dh as i32, z.wi, z.ci);
        let out_size = [dw, dh];
        let g = grid(&out_size);
        match plan {
            ResizePlan::Nearest { xs, ys } => {
                let (xb, yb) = (self.buffer_from(&xs)?, self.buffer_from(&ys)?);
                k.k_resize_nearest(t, g, &d.buf, &o.buf, wi, ci, dwi, dhi, &xb, &yb)?;
                self.finish()?;
            }
            ResizePlan::Separable {
                taps,
                alpha,
                rows,
                beta,
                ks,
                cubic,
            } => {
                let (tb, ab) = (self.buffer_from(&taps)?, self.buffer_from(&alpha)?);
                let (rb, bb) = (self.buffer_from(&rows)?, self.buffer_from(&beta)?);
                let (ks, cubic) = (ks as i32, cubic as i32);
                // CPU devices: one pass, no intermediate buffer (measured 1.5-2x faster
                // on PoCL at 24 MP); GPUs: the two passes.
                if !self.gpu_paths {
                    let (s, o) = (&d.buf, &o.buf);
                    k.k_resize_direct(t, g, s, o, wi, ci, dwi, dhi, &tb, &ab, &rb, &bb, ks, cubic)?;
                } else {
                    let tmp = self.buffer::<i32>(dw * z.h * z.cn)?;
                    let between = [dw, z.h];
                    let gh = grid(&between);
                    k.k_resize_h(t, gh, &d.buf, &tmp, wi, z.hi, ci, dwi, &tb, &ab, ks)?;
                    k.k_resize_v(t, g, &tmp, &o.buf, dwi, dhi, ci, &rb, &bb, ks, cubic)?;
                }
                self.finish()?;
            }
            ResizePlan::AreaInt { fx, fy } => {
                let (fx, fy) = (fx as i32, fy as i32);
                k.k_resize_area_int(t, g, &d.buf, &o.buf, wi, ci, dwi, dhi, fx, fy)?;
            }
            ResizePlan::CpuOnly => {
                return Err(RunError::Device(
                    "a CPU-only resize reached the device".into(),
                ))
            }
        }
        Ok(o)
    }
}
