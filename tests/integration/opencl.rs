//! The OpenCL backend on PoCL (a CPU OpenCL device; CI installs pocl-opencl-icd):
//! every op the device supports gives exactly the CPU's result on every fixture, whole
//! pipelines stay on the device, and the binary's --backend and --list-devices work.
//! Without an OpenCL device these tests fail; they do not skip.

use imgproc::codec::{decode, DecodeOptions};
use imgproc::image::Image;
use imgproc::ops::opencl::{list_devices, Gpu};
use imgproc::ops::{apply, parse_op_str};
use std::path::Path;

fn device_index() -> usize {
    let devices = list_devices().expect("an OpenCL platform (scripts/test.sh installs PoCL)");
    assert!(!devices.is_empty(), "no OpenCL device");
    // IMGPROC_TEST_DEVICE picks the device (scripts/gpu_check.sh sets it to the GPU).
    std::env::var("IMGPROC_TEST_DEVICE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn gpu() -> Gpu {
    Gpu::open(device_index()).expect("the OpenCL device opens and builds the kernels")
}

/// The device as it is, and the device built and driven as a discrete GPU would be
/// (other kernel variants, copies instead of zero-copy), so that PoCL covers both.
fn both_styles() -> [Gpu; 2] {
    let as_gpu = Gpu::open_as_gpu(device_index()).expect("the device builds the GPU variants");
    [gpu(), as_gpu]
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
    let styles = both_styles();
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
        for (style, gpu) in styles.iter().enumerate() {
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
                "{fx} {text} ({backend}, GPU style: {}): {differ} samples differ, shapes {}x{}x{} vs {}x{}x{}",
                style == 1, dev.width, dev.height, dev.channels, cpu.width, cpu.height, cpu.channels
            ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases differ from the CPU:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 300, "only {checked} cases ran on the device");
}

/// Noise with flat patches and edges, so that Canny, median and the morphology ops see
/// both texture and structure.
fn synthetic(w: u32, h: u32, cn: u8, seed: u32) -> Image {
    let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
    let mut data = Vec::with_capacity((w * h) as usize * cn as usize);
    for y in 0..h {
        for x in 0..w {
            for c in 0..cn {
                state = state.wrapping_mul(1664525).wrapping_add(1013904223);
                let noise = (state >> 24) as u8;
                let block = if (x / 9 + y / 7 + c as u32).is_multiple_of(3) {
                    230
                } else {
                    20
                };
                data.push(if (x + y) % 5 == 0 {
                    noise
                } else {
                    block.max(noise / 4)
                });
            }
        }
    }
    Image::from_u8(w, h, cn, data)
}

#[test]
fn kernels_equal_the_cpu_for_every_channel_count_and_awkward_widths() {
    // Widths that leave partial 16-byte chunks and border chunks in every layout, sizes
    // where a whole row is a border, and a height over one band of the one-pass filters.
    // Window sizes on both sides of the one-pass kernels' limit (15). Both kernel styles.
    let styles = both_styles();
    let ops = [
        "invert",
        "brighten",
        "darken:amount=200",
        "threshold:value=0",
        "threshold:value=254",
        "gamma",
        "contrast:factor=0.3",
        "grayscale",
        "hsv:hue=40,saturation=-30,value=50",
        "blur",
        "blur:ksize=3",
        "blur:ksize=0,sigma=3",
        "box_blur:ksize=3",
        "box_blur:ksize=16",
        "sharpen:sigma=2,amount=1.5",
        "sobel",
        "sobel:direction=x",
        "sobel:direction=y",
        "median:ksize=3",
        "median",
        "median:ksize=7",
        "erode",
        "dilate:ksize=5,iterations=2",
        "erode:ksize=4",
        "erode:ksize=17",
        "dilate:ksize=16",
        "canny",
        "canny:low=20,high=60",
        "flip",
        "flip:axis=v",
        "rotate",
        "rotate:angle=180",
        "rotate:angle=270",
        "crop:x=1,y=2,width=20,height=3",
        "resize:scale=0.5,filter=bilinear",
        "resize:scale=0.37,filter=bicubic",
        "resize:scale=1.7,filter=nearest",
        "resize:scale=0.5,filter=area",
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for (w, h) in [(301, 19), (37, 23), (16, 4), (21, 2), (45, 70)] {
        for cn in 1..=4u8 {
            let img = synthetic(w, h, cn, w * 7 + cn as u32);
            for text in ops {
                let op = parse_op_str(text).unwrap();
                let Ok(cpu) = apply(&op, img.clone()) else {
                    continue; // a crop outside a small image: refused on both sides
                };
                for (style, gpu) in styles.iter().enumerate() {
                    let (dev, backend) = gpu
                        .run(std::slice::from_ref(&op), img.clone())
                        .unwrap_or_else(|e| panic!("{w}x{h}x{cn} {text}: {e:?}"));
                    checked += (backend == "opencl") as usize;
                    if dev != cpu {
                        failures.push(format!(
                            "{w}x{h}x{cn} {text} ({backend}, GPU style: {})",
                            style == 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "differ from the CPU:\n{}",
        failures.join("\n")
    );
    assert!(checked > 1000, "only {checked} cases ran on the device");
}

#[test]
fn both_hysteresis_algorithms_equal_the_cpu() {
    // CPU devices trace edges in one pass, GPUs repeat parallel passes: check both here,
    // on images of several bands.
    let devices = both_styles();
    let mut images: Vec<Image> = ["photo_rgb.png", "graphic_rgba.png", "gray_odd.png"]
        .iter()
        .map(|f| fixture(f))
        .collect();
    images.push(synthetic(301, 190, 3, 5));
    for img in &images {
        for text in ["canny", "canny:low=10,high=400", "canny:low=0,high=50"] {
            let op = parse_op_str(text).unwrap();
            let cpu = apply(&op, img.clone()).unwrap();
            for (i, g) in devices.iter().enumerate() {
                let (dev, backend) = g.run(std::slice::from_ref(&op), img.clone()).unwrap();
                assert_eq!(backend, "opencl");
                assert!(
                    dev == cpu,
                    "{text} on {}x{} differs (GPU paths: {})",
                    img.width,
                    img.height,
                    i == 1
                );
            }
        }
    }
}

#[test]
fn a_pipeline_stays_on_the_device_and_matches_the_cpu() {
    let gpu = gpu();
    let img = fixture("photo_rgb.png");
    let ops: Vec<_> = [
        "blur",
        "sharpen",
        "resize:scale=0.5,filter=bicubic",
        "rotate",
        "custom_processing",
        "canny",
    ]
    .iter()
    .map(|t| parse_op_str(t).unwrap())
    .collect();
    let mut cpu = img.clone();
    for op in &ops {
        cpu = apply(op, cpu).unwrap();
    }
    let (dev, backend) = gpu.run(&ops, img.clone()).unwrap();
    assert_eq!(backend, "opencl");
    assert_eq!(dev, cpu);
    // An op without a kernel (equalize) runs on the CPU in the middle of the pipeline.
    let mixed: Vec<_> = ["invert", "equalize", "blur"]
        .iter()
        .map(|t| parse_op_str(t).unwrap())
        .collect();
    let (dev, backend) = gpu.run(&mixed, img.clone()).unwrap();
    assert_eq!(backend, "opencl+cpu");
    let mut cpu = img;
    for op in &mixed {
        cpu = apply(op, cpu).unwrap();
    }
    assert_eq!(dev, cpu);
}

fn run_bin(args: &[&str], dir: &Path) -> std::process::Output {
    run_bin_env(args, dir, &[])
}

fn run_bin_env(args: &[&str], dir: &Path, env: &[(&str, &Path)]) -> std::process::Output {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("imgproc"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn backend_opencl_writes_the_same_bytes_as_the_cpu_and_says_so() {
    let d = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = root.join("examples/jobs.json");
    let m = manifest.to_str().unwrap();
    for (backend, out) in [("cpu", "c"), ("opencl", "g")] {
        let o = d.path().join(out);
        let r = run_bin(
            &[
                "-q",
                "-m",
                m,
                "-o",
                o.to_str().unwrap(),
                "--backend",
                backend,
                "--report",
                o.join("r.json").to_str().unwrap(),
            ],
            d.path(),
        );
        assert!(
            r.status.success(),
            "{backend}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("g/r.json")).unwrap()).unwrap();
    let backends: Vec<&str> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["backend"].as_str().unwrap())
        .collect();
    assert!(
        backends.iter().all(|b| b.starts_with("opencl")),
        "{backends:?}"
    );
    for item in report["items"].as_array().unwrap() {
        let g = Path::new(item["output"].as_str().unwrap());
        let c = d
            .path()
            .join("c")
            .join(g.strip_prefix(d.path().join("g")).unwrap());
        assert_eq!(
            std::fs::read(g).unwrap(),
            std::fs::read(&c).unwrap(),
            "{}",
            g.display()
        );
    }
}

#[test]
fn list_devices_shows_the_device_and_no_platform_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let r = run_bin(&["--list-devices"], d.path());
    assert!(r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stdout).starts_with("0: "),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    // An empty vendor folder hides every OpenCL driver from the ICD loader.
    let empty = tempfile::tempdir().unwrap();
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photo_rgb.png");
    let no_opencl = [("OCL_ICD_VENDORS", empty.path())];
    let photo = photo.to_str().unwrap();
    let r = run_bin_env(
        &["--op", "invert", "-o", "out", "--backend", "opencl", photo],
        d.path(),
        &no_opencl,
    );
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("--backend opencl") && err.contains("OpenCL"),
        "{err}"
    );
    assert!(!d.path().join("out").exists());
    // auto without a device runs on the CPU.
    let r = run_bin_env(
        &["--op", "invert", "-o", "out", "-q", photo],
        d.path(),
        &no_opencl,
    );
    assert!(r.status.success());
    let r = run_bin_env(&["--list-devices"], d.path(), &no_opencl);
    assert!(
        String::from_utf8_lossy(&r.stdout).contains("no OpenCL"),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
}

#[test]
fn workers_under_mpi_use_the_device_and_match_the_cpu() {
    let d = tempfile::tempdir().unwrap();
    let m = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/jobs.json");
    let mut outs = Vec::new();
    for backend in ["cpu", "opencl"] {
        let o = d.path().join(backend);
        let r = std::process::Command::new("mpirun")
            .args(["-np", "3", "--oversubscribe"])
            .arg(assert_cmd::cargo::cargo_bin("imgproc"))
            .args([
                "-q",
                "-m",
                m.to_str().unwrap(),
                "-o",
                o.to_str().unwrap(),
                "--backend",
                backend,
                "--report",
                "-",
            ])
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .output()
            .expect("mpirun");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        outs.push(serde_json::from_slice::<serde_json::Value>(&r.stdout).unwrap());
    }
    for (c, g) in outs[0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .zip(outs[1]["items"].as_array().unwrap())
    {
        assert!(g["backend"].as_str().unwrap().starts_with("opencl"), "{g}");
        assert!(g["rank"].as_u64().unwrap() >= 1);
        let (cp, gp) = (c["output"].as_str().unwrap(), g["output"].as_str().unwrap());
        assert_eq!(
            std::fs::read(cp).unwrap(),
            std::fs::read(gp).unwrap(),
            "{gp}"
        );
    }
}

#[test]
fn concurrent_items_mixing_device_and_cpu_steps_do_not_deadlock() {
    // Regression: a rayon thread waiting inside a CPU step picked up another item and
    // blocked on the device lock its own stack held.
    let d = tempfile::tempdir().unwrap();
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photo_rgb.png");
    for i in 0..12 {
        std::fs::copy(&photo, d.path().join(format!("p{i}.png"))).unwrap();
    }
    let inputs: Vec<String> = (0..12).map(|i| format!("p{i}.png")).collect();
    assert_cmd::Command::cargo_bin("imgproc")
        .unwrap()
        .current_dir(d.path())
        .args(["-q", "--threads", "2", "--backend", "opencl", "-o", "out"])
        .args([
            "--op",
            "blur",
            "--op",
            "equalize",
            "--op",
            "median",
            "--op",
            "resize:scale=0.5,filter=lanczos3",
        ])
        .args(&inputs)
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .success();
    let outputs = std::fs::read_dir(d.path().join("out"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != ".imgproc-journal")
        .count();
    assert_eq!(outputs, 12);
}

/// An op that refuses the image on the device path is named as on the CPU, whether the
/// device or the CPU step refuses it (a crop outside the image after a device step;
/// pad, which has no kernel, before it).
#[test]
fn an_op_that_refuses_the_image_is_named_on_the_device_too() {
    use imgproc::ops::opencl::RunError;
    let crop = parse_op_str("crop:x=3,y=2,width=20,height=17").unwrap();
    for gpu in both_styles() {
        let img = Image::from_u8(7, 5, 3, vec![9; 7 * 5 * 3]);
        match gpu.run(&[parse_op_str("invert").unwrap(), crop.clone()], img) {
            Err(RunError::Op { op, error }) => {
                assert_eq!(op, "crop");
                assert!(error.0.contains("does not fit"), "{}", error.0);
            }
            other => panic!("expected the crop to refuse the image, got {other:?}"),
        }
    }
}

#[test]
fn auto_loads_opencl_only_for_an_item_a_gpu_would_take_on_a_machine_with_one() {
    let d = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let small = root.join("tests/fixtures/photo_rgb.png");
    let big = root.join("../shared/corpus/photos/Elephants_3840x2160.jpg");
    // Which files the run opens, under strace: the ICD loader is libOpenCL.
    let opened = |op: &str, input: &Path| -> bool {
        let out = std::process::Command::new("strace")
            .args(["-f", "-e", "trace=openat", "-o"])
            .arg(d.path().join("trace"))
            .arg(assert_cmd::cargo::cargo_bin("imgproc"))
            .args(["-q", "--op", op, "-o"])
            .arg(d.path().join("out"))
            .arg(input)
            .output()
            .expect("strace runs (Debian package strace)");
        assert!(out.status.success(), "{out:?}");
        std::fs::read_to_string(d.path().join("trace"))
            .unwrap()
            .contains("libOpenCL")
    };
    // A small image, and point ops on a large one: no device would pay off.
    assert!(!opened("blur", &small));
    assert!(!opened("invert", &big));
    // A blur of an 8 MP photo would go to a GPU: the drivers are asked only where a
    // GPU device node exists (PoCL's CPU device alone is never auto's).
    assert_eq!(
        opened("blur", &big),
        imgproc::pipeline::gpu_device_nodes_exist()
    );
    // An explicit --backend opencl loads them whatever the image.
    let out = run_bin(
        &[
            "-q",
            "--backend",
            "opencl",
            "--op",
            "invert",
            "-o",
            "o2",
            small.to_str().unwrap(),
        ],
        d.path(),
    );
    assert!(out.status.success(), "{out:?}");
}
