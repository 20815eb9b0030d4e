//! The OpenCL backend on PoCL (a CPU OpenCL device; CI installs pocl-opencl-icd):
//! every op the device supports gives exactly the CPU's result on every fixture, whole
//! pipelines stay on the device, and the binary's --backend and --list-devices work.
//! Without an OpenCL device these tests fail; they do not skip.

use imgproc::codec::{decode, DecodeOptions};
use imgproc::image::Image;
use imgproc::ops::opencl::{list_devices, Gpu};
use imgproc::ops::{apply, parse_op_str};
use std::path::Path;

fn gpu() -> Gpu {
    let devices = list_devices().expect("an OpenCL platform (scripts/test.sh installs PoCL)");
    assert!(!devices.is_empty(), "no OpenCL device");
    Gpu::open(0).expect("the first OpenCL device opens and builds the kernels")
}

fn fixture(name: &str) -> Image {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    decode(&std::fs::read(p).unwrap(), &DecodeOptions::default())
        .unwrap()
        .frames
        .remove(0)
        .image
}

#[test]
fn every_supported_op_equals_the_cpu_on_every_fixture() {
    let gpu = gpu();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cases.json");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root).unwrap()).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in index["cases"].as_array().unwrap() {
        let (fx, text) = (
            case["fixture"].as_str().unwrap(),
            case["op"].as_str().unwrap(),
        );
        let op = parse_op_str(text).unwrap();
        let img = fixture(fx);
        let cpu = apply(&op, img.clone()).unwrap();
        let (dev, backend) = gpu
            .run(std::slice::from_ref(&op), img.clone())
            .unwrap_or_else(|e| panic!("{fx} {text}: {e:?}"));
        if backend == "opencl" {
            checked += 1;
        }
        if dev != cpu {
            let differ = dev
                .u8_data()
                .iter()
                .zip(cpu.u8_data())
                .filter(|(a, b)| a != b)
                .count();
            failures.push(format!(
                "{fx} {text} ({backend}): {differ} samples differ, shapes {}x{}x{} vs {}x{}x{}",
                dev.width, dev.height, dev.channels, cpu.width, cpu.height, cpu.channels
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases differ from the CPU:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 150, "only {checked} cases ran on the device");
}
