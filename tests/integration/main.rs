//! The one integration-test binary: golden comparisons against OpenCV references,
//! and the real `imgproc` executable driven through its command line.

mod cli;
mod golden;
