//! The one integration-test binary: golden comparisons against OpenCV references,
//! the real `imgproc` executable driven through its command line, and under mpirun.

mod cli;
mod faults;
mod golden;
mod jpeg;
mod memory;
mod mpi;
// Calls the OpenCL module's API, which a build without the feature does not have.
#[cfg(feature = "opencl")]
mod opencl;
mod report;
mod secret;
