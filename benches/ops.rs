//! Criterion suite: every op on a 12 MP RGB image (one thread, throughput in
//! megapixels), plus JPEG and PNG decoding and encoding. The image is a 4000x3000 crop
//! of ../shared/corpus/photos/Elephants_5640x3172.jpg.
//!
//!     cargo bench --bench ops [-- FILTER]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use imgproc::codec::{self, DecodeOptions, EncodeOptions, Frame, OutputFormat};
use imgproc::image::Image;
use imgproc::ops::{apply_ref, parse_op_str, CATALOG};
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn image_12mp() -> Image {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/photos/Elephants_5640x3172.jpg"
    );
    let bytes = std::fs::read(path).expect("the corpus photo Elephants_5640x3172.jpg");
    let img = codec::decode(&bytes, &DecodeOptions::default())
        .expect("decode")
        .frames
        .remove(0)
        .image;
    apply_ref(
        &parse_op_str("crop:width=4000,height=3000").expect("op"),
        &img,
    )
    .expect("crop")
}

fn benches(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let img = image_12mp();
    let mp = (img.width as u64 * img.height as u64) as f64 / 1e6;
    let mut g = c.benchmark_group("ops_12mp_1thread");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Elements((mp * 1e6) as u64));
    for spec in CATALOG {
        let text = match spec.name {
            "resize" => "resize:scale=0.5".to_string(),
            "crop" => "crop:x=100,y=100,width=3000,height=2000".to_string(),
            n => n.to_string(),
        };
        let op = parse_op_str(&text).expect("catalog op");
        g.bench_function(&text, |b| {
            b.iter(|| pool.install(|| apply_ref(&op, &img).expect("apply")))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("codecs_12mp");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Elements((mp * 1e6) as u64));
    for (name, format) in [("jpeg", OutputFormat::Jpeg), ("png", OutputFormat::Png)] {
        let opts = EncodeOptions {
            format,
            quality: 90,
        };
        let encoded = codec::encode(
            vec![Frame {
                image: img.clone(),
                delay_ms: 0,
            }],
            &opts,
        )
        .expect("encode");
        g.bench_function(format!("{name}_encode"), |b| {
            b.iter(|| {
                codec::encode(
                    vec![Frame {
                        image: img.clone(),
                        delay_ms: 0,
                    }],
                    &opts,
                )
                .expect("encode")
            })
        });
        g.bench_function(format!("{name}_decode"), |b| {
            b.iter(|| codec::decode(&encoded, &DecodeOptions::default()).expect("decode"))
        });
    }
    g.finish();
}

criterion_group!(ops, benches);
criterion_main!(ops);
