//! PSRP fragments ([MS-PSRP] 2.2.4): how messages are cut into pieces for the transport.
//!
//! Every PSRP message travels as one or more fragments. A fragment is a 21-byte
//! **big-endian** header followed by a blob; the blobs of the fragments that share an
//! `ObjectId`, joined in `FragmentId` order from the Start fragment to the End fragment, make
//! one message ([`crate::message`]). Several fragments, of one or several objects, may be
//! concatenated in a single transport buffer, and fragments of different objects may
//! interleave.
//!
//! ```text
//!  0                   8                   16  17        21
//! +-------------------+-------------------+---+---------+------------------+
//! | ObjectId (u64 BE) | FragmentId (u64 BE)| F | Len (BE)| Blob (Len bytes) |
//! +-------------------+-------------------+---+---------+------------------+
//!                                           F = flags: bit0 Start (S), bit1 End (E)
//! ```
//!
//! [`parse_fragment`] reads one fragment, [`FragmentReader`] walks a buffer of them without
//! copying, [`Defragmenter`] reassembles messages (zero copy for a message that fits in one
//! fragment), and [`Fragmenter`] / [`OutgoingQueue`] cut messages to a byte budget.
//!
//! [MS-PSRP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-psrp/

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use nom::Parser;
use nom::number::complete::{be_u8, be_u32, be_u64};

/// Size of the `ObjectId` field: the message this fragment belongs to.
pub const OBJECT_ID_LEN: usize = 8;
/// Size of the `FragmentId` field: the fragment's position in its message, from 0.
pub const FRAGMENT_ID_LEN: usize = 8;
/// Size of the flags byte (Start = bit 0, End = bit 1).
pub const FLAGS_LEN: usize = 1;
/// Size of the `BlobLength` field: how many blob bytes follow the header.
pub const BLOB_LENGTH_LEN: usize = 4;
/// Size of the whole fragment header.
pub const HEADER_LEN: usize = OBJECT_ID_LEN + FRAGMENT_ID_LEN + FLAGS_LEN + BLOB_LENGTH_LEN;

/// Flag bit: this fragment starts its message.
pub const FLAG_START: u8 = 0x1;
/// Flag bit: this fragment ends its message.
pub const FLAG_END: u8 = 0x2;

/// Why fragments could not be read or reassembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentError {
    /// Fewer than [`HEADER_LEN`] bytes were left for a header.
    #[error("truncated fragment header: {available} of {HEADER_LEN} bytes")]
    TruncatedHeader {
        /// Bytes that were available.
        available: usize,
    },
    /// The blob is shorter than its `BlobLength`.
    #[error("truncated fragment blob for object {object_id}: {available} of {expected} bytes")]
    TruncatedBlob {
        /// The fragment's object.
        object_id: u64,
        /// The declared blob length.
        expected: usize,
        /// Bytes that were available.
        available: usize,
    },
    /// A fragment other than the first of its object arrived before any Start fragment.
    #[error("fragment {fragment_id} of object {object_id} has no start fragment")]
    MissingStart {
        /// The object.
        object_id: u64,
        /// The fragment that arrived.
        fragment_id: u64,
    },
    /// A Start fragment carried a nonzero `FragmentId`, or a Start arrived for an object
    /// already being assembled.
    #[error("unexpected start fragment {fragment_id} for object {object_id}")]
    UnexpectedStart {
        /// The object.
        object_id: u64,
        /// The fragment that arrived.
        fragment_id: u64,
    },
    /// The previous fragment arrived again.
    #[error("duplicate fragment {fragment_id} of object {object_id}")]
    Duplicate {
        /// The object.
        object_id: u64,
        /// The repeated fragment.
        fragment_id: u64,
    },
    /// A fragment older than the previous one arrived.
    #[error("fragment {got} of object {object_id} out of order, expected {expected}")]
    OutOfOrder {
        /// The object.
        object_id: u64,
        /// The fragment id that was due.
        expected: u64,
        /// The fragment id that arrived.
        got: u64,
    },
    /// One or more fragments were skipped.
    #[error("gap in object {object_id}: expected fragment {expected}, got {got}")]
    Gap {
        /// The object.
        object_id: u64,
        /// The fragment id that was due.
        expected: u64,
        /// The fragment id that arrived.
        got: u64,
    },
    /// Buffering this fragment would pass the byte cap.
    #[error("defragmenter overflow: {needed} bytes buffered, limit {limit}")]
    Overflow {
        /// Bytes that would be buffered.
        needed: usize,
        /// The configured cap.
        limit: usize,
    },
    /// Starting this object would pass the cap on objects assembled at once.
    #[error("too many objects in flight: limit {limit}")]
    TooManyObjects {
        /// The configured cap.
        limit: usize,
    },
    /// A fragment budget too small for a header and one blob byte.
    #[error("fragment size {size} too small, need at least {}", HEADER_LEN + 1)]
    SizeTooSmall {
        /// The size that was asked for.
        size: usize,
    },
    /// A blob longer than `u32::MAX` bytes cannot be described by `BlobLength`.
    #[error("blob of {len} bytes does not fit a fragment")]
    BlobTooLarge {
        /// The blob length.
        len: usize,
    },
}

/// The parsed 21-byte header of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentHeader {
    /// The message the fragment belongs to.
    pub object_id: u64,
    /// The position of the fragment in its message, from 0.
    pub fragment_id: u64,
    /// Start and End bits ([`FLAG_START`], [`FLAG_END`]); other bits are kept as received.
    pub flags: u8,
    /// Number of blob bytes that follow.
    pub blob_len: u32,
}

impl FragmentHeader {
    /// True when the Start bit is set.
    pub fn is_start(&self) -> bool {
        self.flags & FLAG_START != 0
    }

    /// True when the End bit is set.
    pub fn is_end(&self) -> bool {
        self.flags & FLAG_END != 0
    }

    /// Appends the 21 header bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.object_id.to_be_bytes());
        out.extend_from_slice(&self.fragment_id.to_be_bytes());
        out.push(self.flags);
        out.extend_from_slice(&self.blob_len.to_be_bytes());
    }
}

/// Parses a fragment header from the front of `input`.
pub fn parse_header(input: &[u8]) -> Result<FragmentHeader, FragmentError> {
    let res: nom::IResult<&[u8], (u64, u64, u8, u32)> =
        (be_u64, be_u64, be_u8, be_u32).parse(input);
    match res {
        Ok((_, (object_id, fragment_id, flags, blob_len))) => Ok(FragmentHeader {
            object_id,
            fragment_id,
            flags,
            blob_len,
        }),
        Err(_) => Err(FragmentError::TruncatedHeader {
            available: input.len(),
        }),
    }
}

/// One fragment: its header and its blob (`B` is `&[u8]` or [`Bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment<B> {
    /// The header.
    pub header: FragmentHeader,
    /// The blob (`header.blob_len` bytes).
    pub blob: B,
}

/// Parses one fragment from the front of `input`; returns it and the bytes after it.
pub fn parse_fragment(input: &[u8]) -> Result<(Fragment<&[u8]>, &[u8]), FragmentError> {
    let header = parse_header(input)?;
    let rest = input.get(HEADER_LEN..).unwrap_or_default();
    let len = usize::try_from(header.blob_len).unwrap_or(usize::MAX);
    if rest.len() < len {
        return Err(FragmentError::TruncatedBlob {
            object_id: header.object_id,
            expected: len,
            available: rest.len(),
        });
    }
    let (blob, rest) = rest.split_at(len);
    Ok((Fragment { header, blob }, rest))
}

/// Walks the fragments of a buffer, yielding blobs that share the buffer's memory.
///
/// Stops after the first error.
#[derive(Debug, Clone)]
pub struct FragmentReader {
    buf: Bytes,
    failed: bool,
}

impl FragmentReader {
    /// Reads fragments from `buf`.
    pub fn new(buf: Bytes) -> Self {
        FragmentReader { buf, failed: false }
    }
}

impl Iterator for FragmentReader {
    type Item = Result<Fragment<Bytes>, FragmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() || self.failed {
            return None;
        }
        match parse_fragment(&self.buf) {
            Ok((frag, rest)) => {
                let header = frag.header;
                let consumed = self.buf.len() - rest.len();
                let mut chunk = self.buf.split_to(consumed);
                let blob = chunk.split_off(HEADER_LEN);
                Some(Ok(Fragment { header, blob }))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Caps that bound what a [`Defragmenter`] holds for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefragLimits {
    /// Most bytes held for incomplete messages, all objects together.
    pub max_buffered: usize,
    /// Most objects assembled at once.
    pub max_objects: usize,
}

impl Default for DefragLimits {
    /// 64 MiB and 64 objects.
    fn default() -> Self {
        DefragLimits {
            max_buffered: 64 << 20,
            max_objects: 64,
        }
    }
}

/// A message reassembled from its fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    /// The `ObjectId` its fragments carried.
    pub object_id: u64,
    /// The message bytes (header and data).
    pub data: Bytes,
}

/// An object being assembled. Its blobs are copied into an owned buffer rather than kept as
/// slices of the input: a slice would keep its whole transport buffer alive, so the bytes
/// held could far exceed what [`DefragLimits::max_buffered`] counts.
#[derive(Debug)]
struct Partial {
    next: u64,
    buf: BytesMut,
}

/// Reassembles messages from fragments of interleaved objects.
///
/// Feed fragments in the order they arrived with [`Defragmenter::push`] (one fragment) or
/// [`Defragmenter::feed`] (a buffer of them). A message that arrives as one Start+End fragment
/// is returned as a slice of the input without copying; longer ones are joined in a buffer
/// capped by [`DefragLimits`]. Any error leaves the other objects untouched and drops the
/// offending object's partial data.
#[derive(Debug, Default)]
pub struct Defragmenter {
    limits: DefragLimits,
    partial: HashMap<u64, Partial>,
    buffered: usize,
}

impl Defragmenter {
    /// A defragmenter with the given caps.
    pub fn new(limits: DefragLimits) -> Self {
        Defragmenter {
            limits,
            partial: HashMap::new(),
            buffered: 0,
        }
    }

    /// Bytes held for incomplete messages.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Objects being assembled.
    pub fn in_flight(&self) -> usize {
        self.partial.len()
    }

    /// Takes one fragment; returns the message it completes, if any.
    pub fn push(&mut self, frag: Fragment<Bytes>) -> Result<Option<Assembled>, FragmentError> {
        let h = frag.header;
        let id = h.object_id;
        if h.is_start() {
            if h.fragment_id != 0 || self.partial.contains_key(&id) {
                self.drop_object(id);
                return Err(FragmentError::UnexpectedStart {
                    object_id: id,
                    fragment_id: h.fragment_id,
                });
            }
            if h.is_end() {
                return Ok(Some(Assembled {
                    object_id: id,
                    data: frag.blob,
                }));
            }
            if self.partial.len() >= self.limits.max_objects {
                return Err(FragmentError::TooManyObjects {
                    limit: self.limits.max_objects,
                });
            }
            self.reserve(frag.blob.len())?;
            let cap = frag
                .blob
                .len()
                .saturating_mul(4)
                .min(self.limits.max_buffered);
            let mut buf = BytesMut::with_capacity(cap);
            buf.extend_from_slice(&frag.blob);
            self.partial.insert(id, Partial { next: 1, buf });
            return Ok(None);
        }
        let limit = self.limits.max_buffered;
        let needed = self.buffered.saturating_add(frag.blob.len());
        let Some(p) = self.partial.get_mut(&id) else {
            return Err(FragmentError::MissingStart {
                object_id: id,
                fragment_id: h.fragment_id,
            });
        };
        let expected = p.next;
        let got = h.fragment_id;
        let err = if got != expected {
            Some(if got > expected {
                FragmentError::Gap {
                    object_id: id,
                    expected,
                    got,
                }
            } else if got + 1 == expected {
                FragmentError::Duplicate {
                    object_id: id,
                    fragment_id: got,
                }
            } else {
                FragmentError::OutOfOrder {
                    object_id: id,
                    expected,
                    got,
                }
            })
        } else if needed > limit {
            Some(FragmentError::Overflow { needed, limit })
        } else {
            None
        };
        if let Some(e) = err {
            self.drop_object(id);
            return Err(e);
        }
        p.buf.extend_from_slice(&frag.blob);
        p.next = expected.saturating_add(1);
        self.buffered = needed;
        if !h.is_end() {
            return Ok(None);
        }
        let Some(done) = self.partial.remove(&id) else {
            return Ok(None);
        };
        self.buffered -= done.buf.len();
        Ok(Some(Assembled {
            object_id: id,
            data: done.buf.freeze(),
        }))
    }

    /// Takes a buffer of whole fragments; appends completed messages to `out`.
    ///
    /// Stops at the first error; messages completed before it are in `out`.
    pub fn feed(&mut self, buf: Bytes, out: &mut Vec<Assembled>) -> Result<(), FragmentError> {
        for frag in FragmentReader::new(buf) {
            if let Some(done) = self.push(frag?)? {
                out.push(done);
            }
        }
        Ok(())
    }

    fn reserve(&mut self, n: usize) -> Result<(), FragmentError> {
        let needed = self.buffered.saturating_add(n);
        if needed > self.limits.max_buffered {
            return Err(FragmentError::Overflow {
                needed,
                limit: self.limits.max_buffered,
            });
        }
        self.buffered = needed;
        Ok(())
    }

    fn drop_object(&mut self, id: u64) {
        if let Some(p) = self.partial.remove(&id) {
            self.buffered -= p.buf.len();
        }
    }
}

/// Cuts messages into fragments of at most `max_size` bytes, header included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragmenter {
    max_size: usize,
}

impl Fragmenter {
    /// A fragmenter for fragments of at most `max_size` bytes (at least `HEADER_LEN + 1`).
    pub fn new(max_size: usize) -> Result<Self, FragmentError> {
        if max_size <= HEADER_LEN {
            return Err(FragmentError::SizeTooSmall { size: max_size });
        }
        Ok(Fragmenter { max_size })
    }

    /// The largest fragment this fragmenter writes.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Appends the fragments of `message` (object `object_id`) to `out`.
    ///
    /// An empty message still makes one Start+End fragment with an empty blob.
    pub fn write(
        &self,
        object_id: u64,
        message: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FragmentError> {
        let chunk = self.max_size - HEADER_LEN;
        let count = message.len().div_ceil(chunk).max(1);
        out.reserve(message.len() + count * HEADER_LEN);
        let mut rest = message;
        let mut fragment_id = 0u64;
        loop {
            let take = rest.len().min(chunk);
            let (blob, tail) = rest.split_at(take);
            let mut flags = 0;
            if fragment_id == 0 {
                flags |= FLAG_START;
            }
            if tail.is_empty() {
                flags |= FLAG_END;
            }
            let blob_len = u32::try_from(blob.len())
                .map_err(|_| FragmentError::BlobTooLarge { len: blob.len() })?;
            FragmentHeader {
                object_id,
                fragment_id,
                flags,
                blob_len,
            }
            .write(out);
            out.extend_from_slice(blob);
            rest = tail;
            fragment_id += 1;
            if rest.is_empty() {
                return Ok(());
            }
        }
    }
}

#[derive(Debug)]
struct Pending<T> {
    tag: T,
    object_id: u64,
    next_fragment: u64,
    data: Bytes,
    offset: usize,
}

/// Messages waiting to be sent, fragmented on demand to the transport's byte budget.
///
/// [`OutgoingQueue::push`] assigns the next `ObjectId`; [`OutgoingQueue::take`] returns as
/// many fragments as fit in a budget, continuing a partly sent message where it stopped.
/// Each message carries a tag `T` (for the state machines: which WS-Man stream and
/// pipeline it goes to); one [`OutgoingQueue::take`] only packs consecutive messages with
/// the same tag as the oldest one.
#[derive(Debug)]
pub struct OutgoingQueue<T = ()> {
    next_object_id: u64,
    queue: VecDeque<Pending<T>>,
}

impl<T> Default for OutgoingQueue<T> {
    fn default() -> Self {
        Self::new(1)
    }
}

impl<T> OutgoingQueue<T> {
    /// An empty queue whose first message gets `first_object_id`.
    pub fn new(first_object_id: u64) -> Self {
        OutgoingQueue {
            next_object_id: first_object_id,
            queue: VecDeque::new(),
        }
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Messages waiting (including one partly sent).
    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

impl OutgoingQueue<()> {
    /// Queues a message; returns the `ObjectId` it will carry.
    pub fn push(&mut self, message: Bytes) -> u64 {
        self.push_tagged((), message)
    }

    /// Fragments of the queued messages, in order, in at most `max_bytes` bytes; `None` when
    /// nothing is queued. Each fragment carries at least one blob byte (or is the single empty
    /// fragment of an empty message), so `max_bytes` must exceed [`HEADER_LEN`].
    pub fn take(&mut self, max_bytes: usize) -> Result<Option<Vec<u8>>, FragmentError> {
        Ok(self.take_tagged(max_bytes)?.map(|(_, data)| data))
    }
}

impl<T: Clone + PartialEq> OutgoingQueue<T> {
    /// Queues a message for `tag`; returns the `ObjectId` it will carry.
    pub fn push_tagged(&mut self, tag: T, message: Bytes) -> u64 {
        let object_id = self.next_object_id;
        self.next_object_id = self.next_object_id.wrapping_add(1);
        self.queue.push_back(Pending {
            tag,
            object_id,
            next_fragment: 0,
            data: message,
            offset: 0,
        });
        object_id
    }

    /// Like [`OutgoingQueue::take`], for the tag of the oldest message; returns the tag too.
    pub fn take_tagged(&mut self, max_bytes: usize) -> Result<Option<(T, Vec<u8>)>, FragmentError> {
        if max_bytes <= HEADER_LEN {
            return Err(FragmentError::SizeTooSmall { size: max_bytes });
        }
        let Some(tag) = self.queue.front().map(|p| p.tag.clone()) else {
            return Ok(None);
        };
        let mut out = Vec::new();
        while let Some(p) = self.queue.front_mut() {
            let room = max_bytes.saturating_sub(out.len());
            if p.tag != tag || room <= HEADER_LEN {
                break;
            }
            let remaining = p.data.len() - p.offset;
            let take = remaining.min(room - HEADER_LEN);
            let mut flags = 0;
            if p.next_fragment == 0 {
                flags |= FLAG_START;
            }
            let end = take == remaining;
            if end {
                flags |= FLAG_END;
            }
            let blob_len =
                u32::try_from(take).map_err(|_| FragmentError::BlobTooLarge { len: take })?;
            FragmentHeader {
                object_id: p.object_id,
                fragment_id: p.next_fragment,
                flags,
                blob_len,
            }
            .write(&mut out);
            out.extend_from_slice(&p.data[p.offset..p.offset + take]);
            p.offset += take;
            p.next_fragment += 1;
            if end {
                self.queue.pop_front();
            }
        }
        Ok(Some((tag, out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_from_readme_example() {
        let bytes = [
            0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 2, 0xfd,
        ];
        let h = parse_header(&bytes).unwrap();
        assert_eq!(h.object_id, 2);
        assert_eq!(h.fragment_id, 0);
        assert!(h.is_start() && h.is_end());
        assert_eq!(h.blob_len, 765);
        let mut out = Vec::new();
        h.write(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn single_fragment_is_zero_copy() {
        let mut wire = Vec::new();
        Fragmenter::new(100)
            .unwrap()
            .write(7, b"hello", &mut wire)
            .unwrap();
        let wire = Bytes::from(wire);
        let mut d = Defragmenter::default();
        let mut out = Vec::new();
        d.feed(wire.clone(), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].data[..], b"hello");
        assert_eq!(out[0].data.as_ptr(), wire[HEADER_LEN..].as_ptr());
    }

    #[test]
    fn queue_respects_budget_and_continues() {
        let mut q = OutgoingQueue::new(1);
        q.push(Bytes::from(vec![1u8; 50]));
        q.push(Bytes::from(vec![2u8; 10]));
        let mut d = Defragmenter::default();
        let mut got = Vec::new();
        while let Some(chunk) = q.take(40).unwrap() {
            assert!(chunk.len() <= 40);
            d.feed(Bytes::from(chunk), &mut got).unwrap();
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].data.len(), 50);
        assert_eq!((got[1].object_id, got[1].data.len()), (2, 10));
    }
}
