//! imgproc: a batch image processor for multi-core machines and clusters.
//!
//! The crate is organised around one flow: a manifest becomes a [`manifest::Plan`] of
//! work items; each item is run through the pure function [`pipeline::process_item`]
//! (input bytes in, encoded output bytes out); the [`runner`] deals items to threads,
//! writes outputs atomically ([`output`]), reports progress ([`progress`]) and builds
//! the JSON report ([`report`]).
//!
//! Dependency direction: [`ops`] and [`image`] know nothing of files or manifests,
//! [`codec`] knows bytes and pixels but not files, and the runner knows items and
//! bytes but never pixels.

pub mod cli;
pub mod codec;
pub mod error;
pub mod exit;
pub mod guard;
pub mod image;
pub mod item;
pub mod journal;
pub mod launch;
pub mod manifest;
pub mod memory;
pub mod ops;
pub mod output;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod runner;
pub mod sched;
pub mod signals;
pub mod transport;
