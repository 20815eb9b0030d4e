//! Building the kernels: the sources in kernels/*.cl (embedded at build time) plus a
//! generated median network, compiled once per device per process with the options of
//! the device's style, and the compiled program cached on disk (keyed by source,
//! options, device, driver and imgproc's version) where the platform returns binaries.

use super::device::{DeviceError, DeviceInfo};
use crate::ops::median;
use opencl3::context::Context;
use opencl3::program::Program;

/// The kernel sources, one file per op family.
const SOURCES: &[(&str, &str)] = &[
    ("common.cl", include_str!("../../../kernels/common.cl")),
    ("point.cl", include_str!("../../../kernels/point.cl")),
    ("filter.cl", include_str!("../../../kernels/filter.cl")),
    ("geometry.cl", include_str!("../../../kernels/geometry.cl")),
    ("canny.cl", include_str!("../../../kernels/canny.cl")),
];

/// OpenCL source for `medianK_vec` (K = 3, 5, 7): the median of each lane of a 16-byte
/// chunk over a K x K window, border replicate rows, through the CPU's selection network
/// written out as straight-line min/max, which the device compiler keeps in registers.
fn median_source() -> String {
    let mut s = String::from("// Generated from median::median_network.\n");
    for k in [3usize, 5, 7] {
        let (size, net) = median::median_network(k * k);
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

/// Bytes per work-item of the point kernels on CPU devices (SPAN in kernels/common.cl).
pub(super) const CPU_SPAN: usize = 256;

/// The compiled program for a device: from the on-disk cache where an earlier run
/// left it, else built from source (and cached). `gpu_style` picks the build options:
/// aligned 16-byte work-items for GPUs, longer unaligned spans for CPU devices.
pub(super) fn build(
    context: &Context,
    info: &DeviceInfo,
    gpu_style: bool,
) -> Result<Program, DeviceError> {
    let mut parts: Vec<String> = SOURCES.iter().map(|(_, s)| s.to_string()).collect();
    parts.insert(1, median_source());
    let source = parts.join("\n");
    let options = if gpu_style {
        String::new()
    } else {
        format!("-DIMGPROC_UNALIGNED -DSPAN={CPU_SPAN}")
    };
    let options = options.as_str();
    let cached = cache_path(info, &source, options);
    let from_cache = cached
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|bin| Program::create_and_build_from_binary(context, &[&bin], options).ok());
    if let Some(p) = from_cache {
        return Ok(p);
    }
    let p = Program::create_and_build_from_source(context, &source, options).map_err(|log| {
        DeviceError::Build {
            device: info.name.clone(),
            log,
        }
    })?;
    if let (Some(path), Ok(bins)) = (&cached, p.get_binaries()) {
        if let Some(bin) = bins.first().filter(|b| !b.is_empty()) {
            let _ = path.parent().map(std::fs::create_dir_all);
            let _ = crate::output::write_atomic(path, bin);
        }
    }
    Ok(p)
}

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
