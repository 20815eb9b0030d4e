//! JPEG inputs decode to OpenCV's pixels: `imgproc --op invert --format png` on every
//! corpus JPEG and on the fixtures of tests/fixtures/jpeg (4:4:4, 4:2:2, 4:2:0, 4:1:1,
//! progressive, gray, restart markers, EXIF orientations 2-8) equals
//! `cv2.bitwise_not(cv2.imread(f))`, whose shape and CRC-32 scripts/make_jpeg_references.py
//! recorded with OpenCV.

use assert_cmd::Command;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The samples of a PNG imgproc wrote, and (height, width, channels).
fn read_png(path: &Path) -> (Vec<u8>, [usize; 3]) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let channels = info.color_type.samples();
    (buf, [info.height as usize, info.width as usize, channels])
}

#[test]
fn every_jpeg_decodes_to_opencvs_pixels() {
    let refs: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("tests/fixtures/jpeg/opencv.json")).unwrap(),
    )
    .unwrap();
    let refs = refs["references"].as_object().unwrap();
    // Inputs by folder, so that each folder is one run of the binary.
    let mut folders: BTreeMap<PathBuf, Vec<(String, PathBuf)>> = BTreeMap::new();
    for key in refs.keys() {
        let path = match key.strip_prefix("corpus/") {
            Some(rel) => root().join("../shared/corpus").join(rel),
            None => root().join("tests").join(key),
        };
        let dir = path.parent().unwrap().to_path_buf();
        folders.entry(dir).or_default().push((key.clone(), path));
    }
    assert!(refs.len() >= 30, "{} references", refs.len());
    let mut failures = Vec::new();
    for (dir, files) in folders {
        let out = tempfile::tempdir().unwrap();
        Command::cargo_bin("imgproc")
            .unwrap()
            .args([
                "-q",
                "--backend",
                "cpu",
                "--op",
                "invert",
                "--format",
                "png",
                "-o",
            ])
            .arg(out.path())
            .args(files.iter().map(|(_, p)| p))
            .assert()
            .success();
        for (key, path) in files {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let (samples, shape) = read_png(&out.path().join(format!("{stem}.png")));
            let want = &refs[&key];
            let want_shape: Vec<usize> = want["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let want_shape = match want_shape[..] {
                [h, w] => [h, w, 1],
                [h, w, c] => [h, w, c],
                _ => panic!("{key}: bad shape"),
            };
            let crc = crc32fast::hash(&samples);
            if shape != want_shape || u64::from(crc) != want["crc32"].as_u64().unwrap() {
                failures.push(format!(
                    "{key} ({}): imgproc gives {shape:?} with CRC {crc}, OpenCV {want_shape:?} with CRC {}",
                    dir.display(),
                    want["crc32"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
