//! Compression of the stored JSON columns (`payload`, `metrics`) with a zstd dictionary trained
//! on this database's own events.
//!
//! Why a dictionary: one event's payload is a few hundred bytes, too small for a compressor to
//! find repetition inside it; the repetition is across events (the same keys, tool names,
//! paths, commands). The writer samples the first events it stores (again after every
//! [`RETRAIN_AFTER`] events, and early when the dictionary compresses poorly, as when a hub's
//! first events were unlike the rest), a helper thread trains a dictionary, and the writer
//! commits it to `dictionaries` before any producer may use it. Values are compressed on the producer's
//! thread ([`crate::rows::PreparedEvent`]), never on the writer's.
//!
//! Stored form: TEXT is plain JSON (rows written before the first dictionary, or values that
//! did not shrink); BLOB is a zstd frame without its 4-byte magic number. The frame names its
//! dictionary by zstd's dictionary id (a hash of the dictionary's content), which is how a
//! reader finds the decoder in this process-wide registry.
//!
//! This module must never hand back bytes that differ from what was packed: a value whose
//! dictionary is unknown or whose frame does not decode is an error, never a guess. And a
//! dictionary is used only after its row is committed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, ValueRef};
use thiserror::Error;
use zstd::zstd_safe::{self, CCtx, CDict, DCtx, DDict};

/// Events sampled for a dictionary (payloads and metrics alike).
pub const SAMPLES: usize = 4_000;
/// A new dictionary is trained after this many events stored with the previous one, so it
/// follows the sources a hub actually receives.
pub const RETRAIN_AFTER: u64 = 1_000_000;
/// Sooner when the current dictionary does poorly: stored bytes over input bytes above this,
/// measured over the [`POOR_AFTER_BYTES`] since it was installed (a hub whose first events were
/// unlike the rest). On data that no dictionary compresses this retrains once per that many
/// bytes: a 16 KiB dictionary per 8 MiB is 0.2 %, so it cannot run away.
const POOR_RATIO: f64 = 0.5;
const POOR_AFTER_BYTES: u64 = 8 * 1024 * 1024;
/// Largest dictionary trained.
const DICTIONARY_BYTES: usize = 16 * 1024;
/// zstd's level for these small values: a dictionary does most of the work.
const LEVEL: i32 = 3;
/// Values shorter than this are stored as text: a frame's own header would eat the gain.
const MIN_PACKED: usize = 24;
/// The magic number every zstd frame starts with; it is not stored.
const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

#[derive(Debug, Error)]
pub enum CodecError {
    #[error(
        "a stored value names zstd dictionary {0}, which this process has not loaded; reopen the database"
    )]
    UnknownDictionary(u32),
    #[error("a stored value does not decode: {0}")]
    Corrupt(String),
}

/// One decoder per dictionary id, shared by every store in the process (ids are content hashes,
/// so two databases with the same id have the same dictionary).
struct Decoder {
    content: Vec<u8>,
    ddict: DDict<'static>,
}

static DECODERS: LazyLock<RwLock<HashMap<u32, Arc<Decoder>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

thread_local! {
    static CCTX: RefCell<CCtx<'static>> = RefCell::new(CCtx::create());
    static DCTX: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
}

/// Makes a dictionary readable in this process. Returns its id, or `None` when it is not a
/// zstd dictionary or another dictionary already has its id (then it must not be used).
pub fn register(content: &[u8]) -> Option<u32> {
    let id = zstd_safe::get_dict_id_from_dict(content)?.get();
    let mut decoders = DECODERS.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = decoders.get(&id) {
        return (known.content == content).then_some(id);
    }
    decoders.insert(
        id,
        Arc::new(Decoder {
            content: content.to_vec(),
            ddict: DDict::create(content),
        }),
    );
    Some(id)
}

/// Trains a dictionary from sample values; `None` when the samples do not make one.
pub fn train(samples: &[Vec<u8>]) -> Option<Vec<u8>> {
    zstd::dict::from_samples(samples, DICTIONARY_BYTES).ok()
}

/// A dictionary ready for compressing.
pub struct Encoder {
    pub id: u32,
    cdict: CDict<'static>,
}

impl Encoder {
    pub fn new(id: u32, content: &[u8]) -> Encoder {
        Encoder {
            id,
            cdict: CDict::create(content, LEVEL),
        }
    }
}

/// The dictionary producers compress with now (none until the first one is trained), and how
/// well it does: bytes in and out since it was installed.
#[derive(Default)]
pub struct Codec {
    current: RwLock<Option<Arc<Encoder>>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Codec {
    pub fn set(&self, encoder: Encoder) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(encoder));
        self.bytes_in.store(0, Ordering::Relaxed);
        self.bytes_out.store(0, Ordering::Relaxed);
    }

    /// Stored bytes per input byte since the current dictionary was installed, once at least
    /// `min_bytes` went in.
    pub fn ratio(&self, min_bytes: u64) -> Option<f64> {
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        (bytes_in >= min_bytes)
            .then(|| self.bytes_out.load(Ordering::Relaxed) as f64 / bytes_in as f64)
    }

    pub fn has_dictionary(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// The stored form of a JSON value.
    pub fn pack(&self, json: String) -> Packed {
        let encoder = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(encoder) = encoder.filter(|_| json.len() >= MIN_PACKED) else {
            return Packed::Text(json);
        };
        let mut frame = Vec::with_capacity(zstd_safe::compress_bound(json.len()));
        let done = CCTX.with(|c| {
            c.borrow_mut()
                .compress_using_cdict(&mut frame, json.as_bytes(), &encoder.cdict)
        });
        self.bytes_in
            .fetch_add(json.len() as u64, Ordering::Relaxed);
        match done {
            // Kept only when it is smaller than the text it replaces.
            Ok(_) if frame.starts_with(&MAGIC) && frame.len() - MAGIC.len() < json.len() => {
                frame.drain(..MAGIC.len());
                self.bytes_out
                    .fetch_add(frame.len() as u64, Ordering::Relaxed);
                Packed::Blob(frame)
            }
            _ => {
                self.bytes_out
                    .fetch_add(json.len() as u64, Ordering::Relaxed);
                Packed::Text(json)
            }
        }
    }
}

/// The writer's side of training: samples stored events while a dictionary is wanted, trains
/// on a helper thread (seconds of CPU the writer must not spend), and hands the result back.
pub(crate) struct Trainer {
    samples: Vec<Vec<u8>>,
    since_last: u64,
    sampling: bool,
    pending: Option<std::sync::mpsc::Receiver<Option<Vec<u8>>>>,
}

impl Trainer {
    pub fn new(has_dictionary: bool) -> Trainer {
        Trainer {
            samples: Vec::new(),
            since_last: 0,
            sampling: !has_dictionary,
            pending: None,
        }
    }

    /// Called for each newly stored event; costs a counter unless a dictionary is wanted.
    pub fn observe(&mut self, e: &sightline_schema::Event) {
        self.since_last += 1;
        if !self.sampling {
            self.sampling = self.pending.is_none() && self.since_last >= RETRAIN_AFTER;
            return;
        }
        self.sample(e);
    }

    /// Called after each batch: starts sampling early when the current dictionary compresses
    /// poorly.
    pub fn check(&mut self, codec: &Codec) {
        if !self.sampling
            && self.pending.is_none()
            && codec
                .ratio(POOR_AFTER_BYTES)
                .is_some_and(|r| r > POOR_RATIO)
        {
            self.sampling = true;
        }
    }

    fn sample(&mut self, e: &sightline_schema::Event) {
        if !e.payload.is_empty() {
            self.samples.extend(serde_json::to_vec(&e.payload).ok());
        }
        if let Some(m) = &e.metrics {
            self.samples.extend(serde_json::to_vec(m).ok());
        }
        if self.samples.len() >= SAMPLES {
            self.sampling = false;
            let samples = std::mem::take(&mut self.samples);
            let (tx, rx) = std::sync::mpsc::channel();
            let started = std::thread::Builder::new()
                .name("sightline-dict".into())
                .spawn(move || {
                    let _ = tx.send(train(&samples));
                });
            if started.is_ok() {
                self.pending = Some(rx);
            }
        }
    }

    /// A newly trained dictionary, once (`None` while training or when it failed).
    pub fn ready(&mut self) -> Option<Vec<u8>> {
        let result = self.pending.as_ref()?.try_recv();
        match result {
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
            Ok(dictionary) => {
                self.pending = None;
                self.since_last = 0;
                dictionary
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                self.pending = None;
                self.since_last = 0;
                None
            }
        }
    }
}

/// A JSON column's value as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Packed {
    Text(String),
    Blob(Vec<u8>),
}

impl ToSql for Packed {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Packed::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Packed::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// The JSON text of a stored BLOB, exactly as it was packed.
pub fn unpack(stored: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut frame = Vec::with_capacity(MAGIC.len() + stored.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(stored);
    let id = zstd_safe::get_dict_id_from_frame(&frame)
        .ok_or_else(|| CodecError::Corrupt("no dictionary id in the frame".into()))?
        .get();
    let decoder = DECODERS
        .read()
        .expect("decoders lock")
        .get(&id)
        .cloned()
        .ok_or(CodecError::UnknownDictionary(id))?;
    let size = zstd_safe::get_frame_content_size(&frame)
        .map_err(|_| CodecError::Corrupt("bad frame header".into()))?
        .ok_or_else(|| CodecError::Corrupt("no content size in the frame".into()))?;
    // Stored values are capped far below this; a larger claim is corruption, not a value.
    if size > 64 * 1024 * 1024 {
        return Err(CodecError::Corrupt(format!("claims {size} bytes")));
    }
    let mut out = Vec::with_capacity(size as usize);
    DCTX.with(|d| {
        d.borrow_mut()
            .decompress_using_ddict(&mut out, &frame, &decoder.ddict)
    })
    .map_err(|code| CodecError::Corrupt(zstd_safe::get_error_name(code).to_string()))?;
    if out.len() as u64 != size {
        return Err(CodecError::Corrupt("short frame".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: usize) -> String {
        format!(
            r#"{{"cwd":"/home/u/p","tool_input":{{"command":"cargo test -p c{}"}},"tool_name":"Bash","tool_response":{{"exit_code":0,"stdout":"ok {}"}}}}"#,
            i % 7,
            i
        )
    }

    #[test]
    fn packs_smaller_and_unpacks_exactly() {
        let samples: Vec<Vec<u8>> = (0..2000).map(|i| sample(i).into_bytes()).collect();
        let dict = train(&samples).expect("a dictionary");
        let id = register(&dict).expect("registered");
        let codec = Codec::default();
        assert!(
            matches!(codec.pack(sample(1)), Packed::Text(_)),
            "no dictionary yet"
        );
        codec.set(Encoder::new(id, &dict));
        for i in [3, 5000, 123_456] {
            let text = sample(i);
            let Packed::Blob(blob) = codec.pack(text.clone()) else {
                panic!("not packed")
            };
            assert!(
                blob.len() * 2 < text.len(),
                "{} → {}",
                text.len(),
                blob.len()
            );
            assert_eq!(unpack(&blob).unwrap(), text.as_bytes());
        }
        assert!(
            matches!(codec.pack("{}".into()), Packed::Text(_)),
            "too short to pack"
        );
        assert!(unpack(b"\x00\x01garbage").is_err(), "never a guess");
    }
}
