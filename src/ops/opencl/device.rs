//! Finding OpenCL devices: every device of every platform, in the order `--device N`
//! counts them, and the environment PoCL (the usual CPU driver) reads before it starts
//! its threads.

use opencl3::device::{Device, CL_DEVICE_TYPE_ALL, CL_DEVICE_TYPE_GPU};
use opencl3::platform::get_platforms;

pub use super::info::DeviceInfo;

/// Why an OpenCL device cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// No OpenCL library or platform.
    #[error("no OpenCL platform found ({0}): install an OpenCL driver (for a CPU device: apt-get install ocl-icd-libopencl1 pocl-opencl-icd)")]
    NoPlatform(String),
    /// Platforms, but no device on any.
    #[error("the OpenCL platforms report no device")]
    NoDevices,
    /// `--device N` beyond the devices there are.
    #[error("no OpenCL device {index}: there are {count} (see imgproc --list-devices)")]
    NoSuchDevice {
        /// The index asked for.
        index: usize,
        /// How many devices there are.
        count: usize,
    },
    /// The driver refused a context, queue or kernel.
    #[error("{what}: {detail}")]
    Setup {
        /// What was being made.
        what: String,
        /// The driver's error.
        detail: String,
    },
    /// The kernels did not compile on the device.
    #[error("the OpenCL kernels did not build on {device}: {log}")]
    Build {
        /// The device's name.
        device: String,
        /// The compiler's log.
        log: String,
    },
}

pub(super) fn cl_err(what: &str, e: impl std::fmt::Debug) -> DeviceError {
    DeviceError::Setup {
        what: what.to_string(),
        detail: format!("{e:?}"),
    }
}

pub(super) fn all_devices() -> Result<Vec<(DeviceInfo, Device)>, DeviceError> {
    // The ICD loader (ocl-icd) loads the drivers on the first query, and two threads
    // querying at once the first time can see no platform or no device: measured in
    // the test binary, where tests list devices concurrently (1 run in 3 found none).
    static QUERY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = QUERY.lock().unwrap_or_else(|e| e.into_inner());
    let platforms = get_platforms().map_err(|e| DeviceError::NoPlatform(format!("{e:?}")))?;
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

/// Every OpenCL device of every platform; an error says what is missing.
pub fn list_devices() -> Result<Vec<DeviceInfo>, DeviceError> {
    Ok(all_devices()?.into_iter().map(|(i, _)| i).collect())
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
