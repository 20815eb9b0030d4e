//! The in-process transport: worker threads and channels.

use super::{MasterLink, TransportError, WorkerLink};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

/// The master's end of a set of in-process channels.
pub struct LocalMaster {
    to_workers: Vec<Sender<Vec<u8>>>,
    from_workers: Receiver<(usize, Vec<u8>)>,
}

/// One worker's end.
pub struct LocalWorker {
    id: usize,
    from_master: Receiver<Vec<u8>>,
    to_master: Sender<(usize, Vec<u8>)>,
}

/// Creates a master end and `n` worker ends (numbered 1..=n).
pub fn links(n: usize) -> (LocalMaster, Vec<LocalWorker>) {
    let (to_master, from_workers) = channel();
    let mut to_workers = Vec::with_capacity(n);
    let mut workers = Vec::with_capacity(n);
    for id in 1..=n {
        let (tx, rx) = channel();
        to_workers.push(tx);
        workers.push(LocalWorker {
            id,
            from_master: rx,
            to_master: to_master.clone(),
        });
    }
    (
        LocalMaster {
            to_workers,
            from_workers,
        },
        workers,
    )
}

fn gone(what: &str) -> TransportError {
    TransportError(format!("{what} has gone away"))
}

impl MasterLink for LocalMaster {
    fn workers(&self) -> usize {
        self.to_workers.len()
    }
    fn send(&mut self, to: usize, frame: Vec<u8>) -> Result<(), TransportError> {
        self.to_workers
            .get(to.wrapping_sub(1))
            .ok_or_else(|| TransportError(format!("no worker {to}")))?
            .send(frame)
            .map_err(|_| gone(&format!("worker {to}")))
    }
    fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(usize, Vec<u8>)>, TransportError> {
        match self.from_workers.recv_timeout(timeout) {
            Ok(m) => Ok(Some(m)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(gone("every worker")),
        }
    }
    fn forget(&mut self, _to: usize) {}
    fn flush(&mut self, _timeout: Duration) -> Result<bool, TransportError> {
        Ok(true)
    }
}

impl WorkerLink for LocalWorker {
    fn id(&self) -> usize {
        self.id
    }
    fn send(&mut self, frame: Vec<u8>) -> Result<(), TransportError> {
        self.to_master
            .send((self.id, frame))
            .map_err(|_| gone("the master"))
    }
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, TransportError> {
        match self.from_master.recv_timeout(timeout) {
            Ok(m) => Ok(Some(m)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(gone("the master")),
        }
    }
}
