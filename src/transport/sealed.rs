//! `--secret`: every frame between rank 0 and a worker sealed with AES-256-GCM (ring).
//!
//! Without `--shared-fs` the frames carry every input image, every output, and the
//! manifest's paths and parameters; MPI sends them in plaintext over links that other
//! tenants of a cloud network may share. These wrappers go around any transport (MPI
//! in a run, channels in the tests), so the scheduler does not change: it hands frames
//! in and gets frames out, and a frame that fails its check never reaches it.
//!
//! Start-up (plaintext, nothing secret in it): rank 0 sends each worker a fresh random
//! salt; the worker answers with a fresh salt of its own, its host name, and an empty
//! message sealed under the link's key, proving that it holds the same key file. The
//! link's key is derived (HKDF-SHA256) from the shared key, both salts and the worker's
//! rank, so it is new in every run and differs per worker even if an attacker replays
//! an old salt. A nonce is the direction and a per-direction counter, so none repeats
//! under a key. The counter travels with the frame and must be the next one expected:
//! a replayed, dropped or reordered frame is refused as out of sequence, an altered one
//! fails authentication. Rank 0 refuses a worker whose proof fails (its key differs)
//! before any work is dealt; a worker whose frame fails later is treated as lost.
//!
//! A sealed frame is the ciphertext, the 16-byte tag and the little-endian u64 counter
//! (appended, so sealing works in place on the scheduler's buffer).
//!
//! Test hook: `IMGPROC_TEST_TAMPER=flip:R:K` flips one byte of the K-th sealed frame
//! rank R sends (after sealing, as an attacker on the wire would); `replay:R:K` sends
//! it twice.

use super::{MasterLink, TransportError, WorkerLink};
use crate::secret::Key;
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};
use ring::hkdf;
use std::time::{Duration, Instant};

const MAGIC: &[u8; 8] = b"IMGPSEAL";
const VERSION: u8 = 1;
const SALT: usize = 32;
const TAG: usize = 16;
const TRAILER: usize = TAG + 8;

/// Start-up message kinds.
const HELLO: u8 = 1;
const ANSWER: u8 = 2;
const CANNOT: u8 = 3;
const REFUSED: u8 = 4;

/// Directions, in the nonce.
const TO_WORKER: u8 = 0;
const TO_MASTER: u8 = 1;

/// A start-up message: magic, version, kind, then its body.
fn notice(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(10 + body.len());
    m.extend_from_slice(MAGIC);
    m.push(VERSION);
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// The kind and body of a start-up message, if `m` is one.
fn parse_notice(m: &[u8]) -> Option<(u8, &[u8])> {
    let rest = m.strip_prefix(&MAGIC[..])?;
    match rest {
        [VERSION, kind, body @ ..] => Some((*kind, body)),
        _ => None,
    }
}

fn random_salt() -> Result<[u8; SALT], TransportError> {
    let mut salt = [0u8; SALT];
    getrandom::fill(&mut salt)
        .map_err(|e| TransportError(format!("cannot get random bytes from the system: {e}")))?;
    Ok(salt)
}

/// One link's cipher and its two counters.
struct Channel {
    cipher: LessSafeKey,
    sent: u64,
    received: u64,
}

/// Why a received frame was refused.
fn refusal_text(from: usize, why: Refused) -> String {
    match why {
        Refused::Short => format!("a message from rank {from} is too short to be sealed"),
        Refused::Sequence { expected, got } => format!(
            "a message from rank {from} arrived out of sequence (number {got}, expected {expected}): it was replayed, dropped or reordered in transit"
        ),
        Refused::Forged => format!(
            "a message from rank {from} failed authentication: it was altered in transit, or not sealed with this run's key"
        ),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refused {
    Short,
    Sequence { expected: u64, got: u64 },
    Forged,
}

impl Channel {
    /// The link between rank 0 and worker `rank`, keyed for this run.
    fn new(key: &Key, master_salt: &[u8], worker_salt: &[u8], rank: usize) -> Channel {
        let salt = [master_salt, worker_salt].concat();
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(key.bytes());
        let rank = (rank as u64).to_le_bytes();
        let info = [&b"imgproc sealed link v1 rank "[..], &rank[..]];
        // 32 bytes is far below HKDF-SHA256's limit of 8160: neither call can fail.
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .expect("HKDF gives 32 bytes");
        Channel {
            cipher: LessSafeKey::new(UnboundKey::from(okm)),
            sent: 0,
            received: 0,
        }
    }

    fn nonce(dir: u8, counter: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&counter.to_le_bytes());
        n[8] = dir;
        Nonce::assume_unique_for_key(n)
    }

    /// Seals `frame` in place as the next message in direction `dir`.
    fn seal(&mut self, dir: u8, mut frame: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        let counter = self.sent;
        let too_large = |n: usize| {
            TransportError(format!(
                "a message of {n} bytes is too large to seal (AES-GCM takes at most 64 GiB)"
            ))
        };
        let n = frame.len();
        let tag = self
            .cipher
            .seal_in_place_separate_tag(Self::nonce(dir, counter), Aad::empty(), &mut frame)
            .map_err(|_| too_large(n))?;
        self.sent += 1;
        frame.reserve_exact(TRAILER);
        frame.extend_from_slice(tag.as_ref());
        frame.extend_from_slice(&counter.to_le_bytes());
        Ok(frame)
    }

    /// Opens the next message in direction `dir`.
    fn open(&mut self, dir: u8, mut frame: Vec<u8>) -> Result<Vec<u8>, Refused> {
        let n = frame.len();
        if n < TRAILER {
            return Err(Refused::Short);
        }
        let got = u64::from_le_bytes(frame[n - 8..].try_into().map_err(|_| Refused::Short)?);
        if got != self.received {
            return Err(Refused::Sequence {
                expected: self.received,
                got,
            });
        }
        let tag: [u8; TAG] = frame[n - TRAILER..n - 8]
            .try_into()
            .map_err(|_| Refused::Short)?;
        frame.truncate(n - TRAILER);
        self.cipher
            .open_in_place_separate_tag(
                Self::nonce(dir, got),
                Aad::empty(),
                Tag::from(tag),
                &mut frame,
                0..,
            )
            .map_err(|_| Refused::Forged)?;
        self.received += 1;
        Ok(frame)
    }
}

/// The test hook (see the module header) for the rank that sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tamper {
    Flip(u64),
    Replay(u64),
}

fn tamper_for(rank: usize) -> Option<Tamper> {
    let spec = std::env::var("IMGPROC_TEST_TAMPER").ok()?;
    let parts: Vec<&str> = spec.trim().split(':').collect();
    let [kind, r, k] = parts[..] else {
        return None;
    };
    if r.parse::<usize>().ok()? != rank {
        return None;
    }
    let k = k.parse().ok()?;
    match kind {
        "flip" => Some(Tamper::Flip(k)),
        "replay" => Some(Tamper::Replay(k)),
        _ => None,
    }
}

/// Counts sealed frames and applies the test hook to the chosen one; returns the
/// frames to put on the wire.
struct Hook {
    tamper: Option<Tamper>,
    sealed: u64,
}

impl Hook {
    fn new(rank: usize) -> Hook {
        Hook {
            tamper: tamper_for(rank),
            sealed: 0,
        }
    }

    fn apply(&mut self, mut frame: Vec<u8>) -> Vec<Vec<u8>> {
        self.sealed += 1;
        match self.tamper {
            Some(Tamper::Flip(k)) if k == self.sealed => {
                let at = (frame.len() - TRAILER) / 2;
                frame[at] ^= 0x20;
                vec![frame]
            }
            Some(Tamper::Replay(k)) if k == self.sealed => vec![frame.clone(), frame],
            _ => vec![frame],
        }
    }
}

/// A worker rank refused at start-up, as rank 0 reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Its rank.
    pub rank: usize,
    /// Its host, as it said (empty if it did not).
    pub host: String,
    /// Why, in words.
    pub why: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.is_empty() {
            write!(f, "rank {}: {}", self.rank, self.why)
        } else {
            write!(f, "rank {} (host {}): {}", self.rank, self.host, self.why)
        }
    }
}

/// Rank 0's end, sealing what it sends and opening what it receives.
pub struct SealedMaster<L> {
    inner: L,
    links: Vec<Option<Channel>>,
    broken: Vec<(usize, String)>,
    hook: Hook,
}

/// Tells every worker that rank 0 cannot take part (its own key could not be read):
/// they leave with exit 2 without a word, as rank 0 explains.
pub fn refuse_all(link: &mut dyn MasterLink, why: &str) -> Result<(), TransportError> {
    for w in 1..=link.workers() {
        link.send(w, notice(REFUSED, why.as_bytes()))?;
    }
    link.flush(Duration::from_secs(5)).map(|_| ())
}

impl<L: MasterLink> SealedMaster<L> {
    /// Checks every worker's key (see the module header), waiting up to `wait` (`None`:
    /// as long as it takes) or until `stop` says so. Workers whose key differs, or that
    /// cannot read theirs, are refused (told so, and listed in the second value); the
    /// run should then end with exit 2. Workers that did not answer in time are lost.
    pub fn establish(
        mut inner: L,
        key: &Key,
        wait: Option<Duration>,
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<(SealedMaster<L>, Vec<Refusal>), TransportError> {
        let n = inner.workers();
        let salt = random_salt()?;
        for w in 1..=n {
            inner.send(w, notice(HELLO, &salt))?;
        }
        let started = Instant::now();
        let mut links: Vec<Option<Channel>> = (0..n).map(|_| None).collect();
        let mut answered = vec![false; n];
        let mut refusals = Vec::new();
        while answered.contains(&false) && !stop() {
            if wait.is_some_and(|w| started.elapsed() >= w) {
                break;
            }
            let Some((w, m)) = inner.recv_timeout(Duration::from_millis(100))? else {
                continue;
            };
            if !(1..=n).contains(&w) || answered[w - 1] {
                continue;
            }
            answered[w - 1] = true;
            let refuse = |host: &[u8], why: String| Refusal {
                rank: w,
                host: String::from_utf8_lossy(host).into_owned(),
                why,
            };
            match parse_notice(&m) {
                Some((ANSWER, body)) if body.len() > SALT => {
                    let (ws, rest) = body.split_at(SALT);
                    let host_len = rest[0] as usize;
                    let Some((host, proof)) = rest[1..].split_at_checked(host_len) else {
                        refusals.push(refuse(b"", "its answer to the key check is malformed".into()));
                        continue;
                    };
                    let mut ch = Channel::new(key, &salt, ws, w);
                    match ch.open(TO_MASTER, proof.to_vec()) {
                        Ok(_) => links[w - 1] = Some(ch),
                        Err(_) => refusals.push(refuse(
                            host,
                            "its key differs from rank 0's (or its answer was altered in transit): give every host the same key file".into(),
                        )),
                    }
                }
                Some((CANNOT, body)) => {
                    let (host, why) = match body.split_first() {
                        Some((&len, rest)) => rest.split_at_checked(len as usize).unwrap_or((b"", rest)),
                        None => (&b""[..], &b""[..]),
                    };
                    refusals.push(refuse(host, String::from_utf8_lossy(why).into_owned()));
                }
                _ => refusals.push(refuse(
                    b"",
                    "it did not take part in the key check: start every rank with the same --secret".into(),
                )),
            }
        }
        for r in &refusals {
            // Best effort: a refused rank may have left already.
            let _ = inner.send(r.rank, notice(REFUSED, r.why.as_bytes()));
        }
        let broken = (1..=n)
            .filter(|&w| !answered[w - 1])
            .map(|w| {
                (
                    w,
                    format!(
                        "it did not answer the key check within {:.0} s",
                        started.elapsed().as_secs_f64()
                    ),
                )
            })
            .collect();
        let sealed = SealedMaster {
            inner,
            links,
            broken,
            hook: Hook::new(0),
        };
        Ok((sealed, refusals))
    }
}

impl<L: MasterLink> MasterLink for SealedMaster<L> {
    fn workers(&self) -> usize {
        self.inner.workers()
    }

    fn send(&mut self, to: usize, frame: Vec<u8>) -> Result<(), TransportError> {
        // A worker refused at start-up, or whose link failed, gets nothing more.
        let Some(Some(ch)) = self.links.get_mut(to.wrapping_sub(1)) else {
            return Ok(());
        };
        let sealed = ch.seal(TO_WORKER, frame)?;
        for f in self.hook.apply(sealed) {
            self.inner.send(to, f)?;
        }
        Ok(())
    }

    fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(usize, Vec<u8>)>, TransportError> {
        let Some((w, frame)) = self.inner.recv_timeout(timeout)? else {
            return Ok(None);
        };
        let Some(slot) = self.links.get_mut(w.wrapping_sub(1)) else {
            return Ok(None);
        };
        let Some(ch) = slot else {
            // Nothing from a refused or failed link reaches the scheduler.
            return Ok(None);
        };
        match ch.open(TO_MASTER, frame) {
            Ok(f) => Ok(Some((w, f))),
            Err(why) => {
                *slot = None;
                self.broken.push((w, refusal_text(w, why)));
                Ok(None)
            }
        }
    }

    fn broken(&mut self) -> Vec<(usize, String)> {
        let mut b = self.inner.broken();
        b.append(&mut self.broken);
        b
    }

    fn set_patience(&mut self, patience: Duration) {
        self.inner.set_patience(patience);
    }

    fn forget(&mut self, to: usize) {
        self.inner.forget(to);
    }

    fn flush(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        self.inner.flush(timeout)
    }
}

/// Why a worker does not take part in a sealed run.
#[derive(Debug)]
pub enum WorkerRefusal {
    /// Rank 0 refused this rank (its key differs, or cannot be read here) or cannot
    /// take part itself; rank 0 explains, and this rank leaves with exit 2.
    Refused,
    /// The start-up failed otherwise (the transport, or rank 0 did not seal).
    Failed(TransportError),
}

impl From<TransportError> for WorkerRefusal {
    fn from(e: TransportError) -> Self {
        WorkerRefusal::Failed(e)
    }
}

/// A worker's end, sealing what it sends and opening what it receives.
pub struct SealedWorker<L> {
    inner: L,
    ch: Channel,
    first: Option<Vec<u8>>,
    hook: Hook,
}

impl<L: WorkerLink> SealedWorker<L> {
    /// Answers rank 0's key check with `key` (or, if this rank could not read its key,
    /// with why), then waits for rank 0's first sealed frame or its refusal. Waits for
    /// rank 0 as long as it takes, as a worker waits for its setup.
    pub fn establish(
        mut inner: L,
        key: Result<&Key, String>,
        host: &str,
    ) -> Result<SealedWorker<L>, WorkerRefusal> {
        let hello = wait_for(&mut inner)?;
        let master_salt = match parse_notice(&hello) {
            Some((HELLO, salt)) if salt.len() == SALT => salt.to_vec(),
            Some((REFUSED, _)) => return Err(WorkerRefusal::Refused),
            _ => {
                return Err(WorkerRefusal::Failed(TransportError(
                    "rank 0 did not start a key check (was it started without --secret? every rank needs the same flags)".into(),
                )))
            }
        };
        let host = &host.as_bytes()[..host.len().min(255)];
        let key = match key {
            Ok(k) => k,
            Err(why) => {
                let body = [&[host.len() as u8][..], host, why.as_bytes()].concat();
                inner.send(notice(CANNOT, &body))?;
                return Err(WorkerRefusal::Refused);
            }
        };
        let salt = random_salt()?;
        let rank = inner.id();
        let mut ch = Channel::new(key, &master_salt, &salt, rank);
        let proof = ch.seal(TO_MASTER, Vec::new())?;
        let body = [&salt[..], &[host.len() as u8], host, &proof].concat();
        inner.send(notice(ANSWER, &body))?;
        let first = wait_for(&mut inner)?;
        if let Some((REFUSED, _)) = parse_notice(&first) {
            return Err(WorkerRefusal::Refused);
        }
        let first = ch
            .open(TO_WORKER, first)
            .map_err(|why| TransportError(refusal_text(0, why)))?;
        Ok(SealedWorker {
            inner,
            ch,
            first: Some(first),
            hook: Hook::new(rank),
        })
    }
}

/// The next frame from rank 0, however long it takes.
fn wait_for<L: WorkerLink>(inner: &mut L) -> Result<Vec<u8>, TransportError> {
    loop {
        if let Some(m) = inner.recv_timeout(Duration::from_secs(1))? {
            return Ok(m);
        }
    }
}

impl<L: WorkerLink> WorkerLink for SealedWorker<L> {
    fn id(&self) -> usize {
        self.inner.id()
    }

    fn send(&mut self, frame: Vec<u8>) -> Result<(), TransportError> {
        let sealed = self.ch.seal(TO_MASTER, frame)?;
        for f in self.hook.apply(sealed) {
            self.inner.send(f)?;
        }
        Ok(())
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, TransportError> {
        if let Some(f) = self.first.take() {
            return Ok(Some(f));
        }
        let Some(frame) = self.inner.recv_timeout(timeout)? else {
            return Ok(None);
        };
        self.ch.open(TO_WORKER, frame).map(Some).map_err(|why| {
            TransportError(format!(
                "{}; this rank stops, as nothing more from rank 0 can be trusted",
                refusal_text(0, why)
            ))
        })
    }

    fn set_patience(&mut self, patience: Option<Duration>) {
        self.inner.set_patience(patience);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::local::{links, LocalMaster, LocalWorker};

    fn key(b: u8) -> Key {
        Key::from_bytes([b; 32])
    }

    type Started = std::thread::JoinHandle<Result<SealedWorker<LocalWorker>, WorkerRefusal>>;

    /// Rank 0 and `keys.len()` workers over channels; worker `i` answers with
    /// `keys[i]` (an `Err` says it could not read its key).
    fn start(
        master_key: u8,
        keys: Vec<Result<u8, String>>,
    ) -> (SealedMaster<LocalMaster>, Vec<Refusal>, Vec<Started>) {
        let (master, workers) = links(keys.len());
        let handles = workers
            .into_iter()
            .zip(keys)
            .map(|(w, k)| {
                std::thread::spawn(move || {
                    let k = k.map(key);
                    SealedWorker::establish(w, k.as_ref().map_err(Clone::clone), "h")
                })
            })
            .collect();
        let (m, refused) = SealedMaster::establish(
            master,
            &key(master_key),
            Some(Duration::from_secs(20)),
            &mut || false,
        )
        .unwrap();
        (m, refused, handles)
    }

    #[test]
    fn frames_travel_sealed_both_ways_and_come_out_whole() {
        let (mut m, refused, handles) = start(7, vec![Ok(7), Ok(7)]);
        assert!(refused.is_empty());
        let frame: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        m.send(1, frame.clone()).unwrap();
        m.send(2, b"two".to_vec()).unwrap();
        let mut ws = Vec::new();
        for (i, h) in handles.into_iter().enumerate() {
            ws.push(h.join().unwrap().unwrap());
            let w = ws.last_mut().unwrap();
            let got = w.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
            assert_eq!(
                got,
                if i == 0 {
                    frame.clone()
                } else {
                    b"two".to_vec()
                }
            );
            for n in 0..3u8 {
                w.send(vec![n; 10]).unwrap();
            }
        }
        let mut got = Vec::new();
        while let Some(f) = m.recv_timeout(Duration::from_millis(200)).unwrap() {
            got.push(f);
        }
        got.sort();
        let mut want: Vec<(usize, Vec<u8>)> = (1..=2)
            .flat_map(|w| (0..3u8).map(move |n| (w, vec![n; 10])))
            .collect();
        want.sort();
        assert_eq!(got, want);
        assert!(m.broken().is_empty());
    }

    #[test]
    fn a_worker_with_another_key_or_none_is_refused_before_any_work() {
        let (mut m, refused, handles) = start(
            7,
            vec![Ok(7), Ok(8), Err("cannot read the key file /k".into())],
        );
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert_eq!(refused[0].rank.min(refused[1].rank), 2);
        let texts: Vec<String> = refused.iter().map(|r| r.to_string()).collect();
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("rank 2 (host h): its key differs")),
            "{texts:?}"
        );
        assert!(
            texts
                .iter()
                .any(|t| t.contains("rank 3 (host h): cannot read the key file /k")),
            "{texts:?}"
        );
        m.send(1, b"go".to_vec()).unwrap();
        // Frames to refused ranks are never sent.
        m.send(2, b"secret".to_vec()).unwrap();
        let mut ends = handles.into_iter().map(|h| h.join().unwrap());
        let mut good = ends.next().unwrap().unwrap();
        assert_eq!(
            good.recv_timeout(Duration::from_secs(5)).unwrap().unwrap(),
            b"go"
        );
        assert!(ends.all(|e| matches!(e, Err(WorkerRefusal::Refused))));
    }

    #[test]
    fn a_worker_leaves_when_rank_0_cannot_read_its_key() {
        let (mut master, mut workers) = links(1);
        let w = workers.pop().unwrap();
        let h = std::thread::spawn(move || SealedWorker::establish(w, Ok(&key(1)), "h"));
        refuse_all(&mut master, "no key").unwrap();
        assert!(matches!(h.join().unwrap(), Err(WorkerRefusal::Refused)));
    }

    #[test]
    fn a_worker_says_what_to_do_when_rank_0_does_not_seal() {
        // Rank 0 started without --secret: its first frame is work, not a key check.
        let (mut master, mut workers) = links(1);
        let w = workers.pop().unwrap();
        let h = std::thread::spawn(move || SealedWorker::establish(w, Ok(&key(1)), "h"));
        master.send(1, b"an unsealed frame".to_vec()).unwrap();
        match h.join().unwrap() {
            Err(WorkerRefusal::Failed(e)) => {
                assert!(e.to_string().contains("without --secret"), "{e}")
            }
            Err(WorkerRefusal::Refused) => panic!("refused, not failed"),
            Ok(_) => panic!("established with a rank 0 that does not seal"),
        }
    }

    #[test]
    fn an_altered_or_replayed_frame_breaks_only_its_link() {
        let (mut m, _, handles) = start(3, vec![Ok(3), Ok(3), Ok(3)]);
        for w in 1..=3 {
            m.send(w, b"setup".to_vec()).unwrap();
        }
        let mut ws: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        // Worker 1's second frame is altered on the wire; worker 2 replays its first.
        ws[0].hook.tamper = Some(Tamper::Flip(2));
        ws[1].hook.tamper = Some(Tamper::Replay(1));
        for w in ws.iter_mut().take(2) {
            let setup = w.recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
            assert_eq!(setup, b"setup");
            w.send(b"result one".to_vec()).unwrap();
            w.send(b"result two".to_vec()).unwrap();
        }
        let mut got = Vec::new();
        // A refused frame gives `None` at once, as a quiet moment would.
        for _ in 0..8 {
            got.extend(m.recv_timeout(Duration::from_millis(100)).unwrap());
        }
        got.sort();
        // Nothing after the refused frame reaches the scheduler from that worker.
        assert_eq!(
            got,
            vec![(1, b"result one".to_vec()), (2, b"result one".to_vec())]
        );
        let mut broken = m.broken();
        broken.sort();
        assert_eq!(broken.len(), 2);
        assert!(
            broken[0].1.contains("rank 1 failed authentication"),
            "{broken:?}"
        );
        assert!(
            broken[1]
                .1
                .contains("rank 2 arrived out of sequence (number 1, expected 2)"),
            "{broken:?}"
        );
        // A worker refuses an altered frame from rank 0 too.
        m.hook.tamper = Some(Tamper::Flip(m.hook.sealed + 1));
        m.send(3, b"tasks".to_vec()).unwrap();
        let setup = ws[2].recv_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(setup, b"setup");
        let e = ws[2].recv_timeout(Duration::from_secs(5)).unwrap_err();
        assert!(e.0.contains("rank 0 failed authentication"), "{e}");
    }

    #[test]
    fn a_sealed_frame_hides_its_bytes_and_opens_only_in_its_place() {
        let k = key(9);
        let mut a = Channel::new(&k, &[1; SALT], &[2; SALT], 1);
        let plain = b"\xff\xd8\xff\xe0 photos/cat.jpg".repeat(10);
        let sealed = a.seal(TO_MASTER, plain.clone()).unwrap();
        assert_eq!(sealed.len(), plain.len() + TRAILER);
        assert!(!sealed
            .windows(4)
            .any(|w| w == b"\xff\xd8\xff\xe0" || w == b"cat."));
        // The same key and salts for another rank, or other salts, do not open it.
        for mut other in [
            Channel::new(&k, &[1; SALT], &[2; SALT], 2),
            Channel::new(&k, &[1; SALT], &[3; SALT], 1),
            Channel::new(&key(8), &[1; SALT], &[2; SALT], 1),
        ] {
            assert_eq!(other.open(TO_MASTER, sealed.clone()), Err(Refused::Forged));
        }
        let mut b = Channel::new(&k, &[1; SALT], &[2; SALT], 1);
        // Nor does the other direction.
        assert_eq!(b.open(TO_WORKER, sealed.clone()), Err(Refused::Forged));
        assert_eq!(b.open(TO_MASTER, sealed.clone()).unwrap(), plain);
        assert_eq!(
            b.open(TO_MASTER, sealed.clone()),
            Err(Refused::Sequence {
                expected: 1,
                got: 0
            })
        );
        assert_eq!(b.open(TO_MASTER, vec![0; TRAILER - 1]), Err(Refused::Short));
        // The same bytes sealed again differ (a new nonce).
        let again = a.seal(TO_MASTER, plain.clone()).unwrap();
        assert_ne!(again[..plain.len()], sealed[..plain.len()]);
        assert_eq!(b.open(TO_MASTER, again).unwrap(), plain);
    }

    #[test]
    fn start_up_messages_are_recognised_and_nothing_else_is() {
        let m = notice(HELLO, &[5; SALT]);
        assert_eq!(parse_notice(&m), Some((HELLO, &[5u8; SALT][..])));
        assert_eq!(parse_notice(b"IMGPSEAL"), None);
        assert_eq!(parse_notice(b"{\"Setup\":{}}"), None);
        let mut wrong = m.clone();
        wrong[8] = VERSION + 1;
        assert_eq!(parse_notice(&wrong), None);
    }
}
