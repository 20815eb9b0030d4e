//! imgproc: a batch image processor for multi-core machines and clusters.
//!
//! The crate is organised around one flow: a manifest becomes a [`manifest::Plan`] of
//! work items; each item is run through the pure function [`pipeline::process_item`]
//! (input bytes in, encoded output bytes out); the runner deals items to threads or
//! ranks (through the scheduler and a transport), writes outputs atomically, reports
//! progress and builds the JSON report.
//!
//! Dependency direction: [`ops`] and [`image`] know nothing of files or manifests,
//! [`codec`] knows bytes and pixels but not files, and the runner knows items and
//! bytes but never pixels.
//!
//! The public surface is what the binary ([`app::main`]), the tests and the benches
//! use: the ops, codecs, pipeline, manifest and memory model, and the types in their
//! signatures. Scheduling, transports, journal, output, progress and report are
//! `pub(crate)`.

pub mod app;
pub(crate) mod cli;
pub mod codec;
pub mod error;
pub(crate) mod events;
pub(crate) mod exit;
pub(crate) mod guard;
pub mod image;
pub mod item;
pub(crate) mod journal;
pub(crate) mod launch;
pub mod manifest;
pub mod memory;
pub mod ops;
pub(crate) mod output;
pub mod pipeline;
pub(crate) mod progress;
pub(crate) mod report;
pub(crate) mod runner;
pub(crate) mod sched;
pub(crate) mod secret;
pub(crate) mod signals;
pub(crate) mod transport;
