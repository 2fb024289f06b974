//! Fragmenter / defragmenter properties and the exact errors for broken fragment streams.

use bytes::Bytes;
use proptest::prelude::*;
use rps_psrp::fragment::{
    DefragLimits, Defragmenter, Fragment, FragmentError, FragmentHeader, FragmentReader,
    Fragmenter, HEADER_LEN, OutgoingQueue, parse_fragment,
};

fn frag(object_id: u64, fragment_id: u64, flags: u8, blob: &[u8]) -> Fragment<Bytes> {
    Fragment {
        header: FragmentHeader {
            object_id,
            fragment_id,
            flags,
            blob_len: blob.len() as u32,
        },
        blob: Bytes::copy_from_slice(blob),
    }
}

/// Splits `wire` into its fragments (as owned values).
fn fragments(wire: Vec<u8>) -> Vec<Fragment<Bytes>> {
    FragmentReader::new(Bytes::from(wire))
        .collect::<Result<_, _>>()
        .expect("valid fragments")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn round_trip_with_interleaving(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 1..8),
        max_size in (HEADER_LEN + 1)..200usize,
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..400),
    ) {
        let f = Fragmenter::new(max_size).unwrap();
        let mut per_object: Vec<std::collections::VecDeque<Fragment<Bytes>>> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut wire = Vec::new();
                f.write(i as u64 + 10, m, &mut wire).unwrap();
                let frags = fragments(wire);
                for fr in &frags {
                    prop_assert!(HEADER_LEN + fr.blob.len() <= max_size);
                }
                Ok(frags.into())
            })
            .collect::<Result<_, TestCaseError>>()?;
        // Interleave: each pick chooses a non-empty object queue; then drain in order.
        let mut order = Vec::new();
        let mut picks = picks.into_iter();
        loop {
            let live: Vec<usize> = (0..per_object.len()).filter(|&i| !per_object[i].is_empty()).collect();
            if live.is_empty() { break; }
            let i = match picks.next() { Some(p) => live[p.index(live.len())], None => live[0] };
            order.push(per_object[i].pop_front().unwrap());
        }
        let mut d = Defragmenter::default();
        let mut got = std::collections::BTreeMap::new();
        for fr in order {
            if let Some(done) = d.push(fr).unwrap() {
                prop_assert!(got.insert(done.object_id, done.data).is_none());
            }
        }
        prop_assert_eq!(d.in_flight(), 0);
        prop_assert_eq!(d.buffered(), 0);
        prop_assert_eq!(got.len(), messages.len());
        for (i, m) in messages.iter().enumerate() {
            prop_assert_eq!(&got[&(i as u64 + 10)][..], &m[..]);
        }
    }

    #[test]
    fn outgoing_queue_round_trip(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..500), 1..6),
        budget in (HEADER_LEN + 1)..300usize,
    ) {
        let mut q = OutgoingQueue::new(1);
        for m in &messages {
            q.push(Bytes::from(m.clone()));
        }
        let mut d = Defragmenter::default();
        let mut out = Vec::new();
        while let Some(chunk) = q.take(budget).unwrap() {
            prop_assert!(chunk.len() <= budget && !chunk.is_empty());
            d.feed(Bytes::from(chunk), &mut out).unwrap();
        }
        prop_assert_eq!(out.len(), messages.len());
        for (i, (a, m)) in out.iter().zip(&messages).enumerate() {
            prop_assert_eq!(a.object_id, i as u64 + 1);
            prop_assert_eq!(&a.data[..], &m[..]);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_fragment(&bytes);
        let mut d = Defragmenter::new(DefragLimits { max_buffered: 256, max_objects: 2 });
        let mut out = Vec::new();
        let _ = d.feed(Bytes::from(bytes), &mut out);
    }
}

#[test]
fn truncated_header_and_blob() {
    let mut wire = Vec::new();
    Fragmenter::new(100)
        .unwrap()
        .write(1, b"hello", &mut wire)
        .unwrap();
    assert_eq!(
        parse_fragment(&wire[..20]).unwrap_err(),
        FragmentError::TruncatedHeader { available: 20 }
    );
    assert_eq!(
        parse_fragment(&wire[..HEADER_LEN + 2]).unwrap_err(),
        FragmentError::TruncatedBlob {
            object_id: 1,
            expected: 5,
            available: 2
        }
    );
    let mut d = Defragmenter::default();
    let mut out = Vec::new();
    let err = d.feed(Bytes::from(wire[..wire.len() - 1].to_vec()), &mut out);
    assert_eq!(
        err,
        Err(FragmentError::TruncatedBlob {
            object_id: 1,
            expected: 5,
            available: 4
        })
    );
}

#[test]
fn gap_duplicate_out_of_order_and_missing_start() {
    let mut d = Defragmenter::default();
    assert_eq!(d.push(frag(1, 0, 1, b"a")), Ok(None));
    assert_eq!(
        d.push(frag(1, 2, 0, b"c")),
        Err(FragmentError::Gap {
            object_id: 1,
            expected: 1,
            got: 2
        })
    );
    // The failed object was dropped: its next fragment has no start.
    assert_eq!(
        d.push(frag(1, 1, 2, b"b")),
        Err(FragmentError::MissingStart {
            object_id: 1,
            fragment_id: 1
        })
    );
    d.push(frag(2, 0, 1, b"a")).unwrap();
    d.push(frag(2, 1, 0, b"b")).unwrap();
    assert_eq!(
        d.push(frag(2, 1, 0, b"b")),
        Err(FragmentError::Duplicate {
            object_id: 2,
            fragment_id: 1
        })
    );
    d.push(frag(3, 0, 1, b"a")).unwrap();
    d.push(frag(3, 1, 0, b"b")).unwrap();
    d.push(frag(3, 2, 0, b"c")).unwrap();
    assert_eq!(
        d.push(frag(3, 0, 0, b"a")),
        Err(FragmentError::OutOfOrder {
            object_id: 3,
            expected: 3,
            got: 0
        })
    );
    assert_eq!(
        d.push(frag(4, 0, 2, b"z")),
        Err(FragmentError::MissingStart {
            object_id: 4,
            fragment_id: 0
        })
    );
    d.push(frag(5, 0, 1, b"a")).unwrap();
    assert_eq!(
        d.push(frag(5, 0, 3, b"a")),
        Err(FragmentError::UnexpectedStart {
            object_id: 5,
            fragment_id: 0
        })
    );
    assert_eq!(
        d.push(frag(6, 1, 1, b"a")),
        Err(FragmentError::UnexpectedStart {
            object_id: 6,
            fragment_id: 1
        })
    );
    assert_eq!(d.in_flight(), 0);
    assert_eq!(d.buffered(), 0);
}

#[test]
fn caps_on_bytes_and_objects() {
    let mut d = Defragmenter::new(DefragLimits {
        max_buffered: 10,
        max_objects: 2,
    });
    d.push(frag(1, 0, 1, b"12345")).unwrap();
    d.push(frag(2, 0, 1, b"123")).unwrap();
    assert_eq!(
        d.push(frag(3, 0, 1, b"1")),
        Err(FragmentError::TooManyObjects { limit: 2 })
    );
    assert_eq!(
        d.push(frag(1, 1, 0, b"123")),
        Err(FragmentError::Overflow {
            needed: 11,
            limit: 10
        })
    );
    // A complete single fragment needs no buffer, whatever its size.
    let big = vec![0u8; 100];
    assert_eq!(
        d.push(frag(9, 0, 3, &big)).unwrap().unwrap().data.len(),
        100
    );
    assert_eq!(d.buffered(), 3);
}

#[test]
fn sizes_too_small_are_rejected() {
    assert_eq!(
        Fragmenter::new(HEADER_LEN),
        Err(FragmentError::SizeTooSmall { size: HEADER_LEN })
    );
    let mut q = OutgoingQueue::new(1);
    q.push(Bytes::from_static(b"x"));
    assert_eq!(
        q.take(HEADER_LEN),
        Err(FragmentError::SizeTooSmall { size: HEADER_LEN })
    );
}
