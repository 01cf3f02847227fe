//! Hostile bytes through every decoder of repository objects: random
//! garbage and valid objects with random damage. Nothing may panic, and
//! damage must never decode as valid.

use std::sync::Arc;

use bytes::Bytes;
use rampart_backup::crypto::MasterKeys;
use rampart_backup::format::{
    self, BlobKind, IndexFile, Lock, PackHeader, SealedKind, Snapshot, Tree,
};
use rampart_backup::{Backend, Error, Id, KdfParams, Kind, ObjectBackend, Repository};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

fn mutate(rng: &mut StdRng, bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match rng.random_range(0..4) {
        0 if !out.is_empty() => {
            let i = rng.random_range(0..out.len());
            out[i] ^= 1 << rng.random_range(0..8);
        }
        1 => out.truncate(rng.random_range(0..=out.len())),
        2 if !out.is_empty() => {
            out.remove(rng.random_range(0..out.len()));
        }
        _ => {
            let i = rng.random_range(0..=out.len());
            out.insert(i, rng.random());
        }
    }
    out
}

#[test]
fn damaged_objects_never_decode_and_never_panic() {
    let keys = MasterKeys::generate();
    let mut rng = StdRng::seed_from_u64(0xbad);
    let snapshot_bytes = format::seal_object(
        &keys,
        SealedKind::Snapshot,
        &serde_json::json!({"time": "t", "hostname": "h", "paths": [], "tree": Id([1; 32]).hex(),
            "summary": {"files": 0, "dirs": 0, "bytes": 0, "files_unchanged": 0, "blobs_added": 0,
            "bytes_added": 0, "bytes_stored": 0}, "program_version": "x"}),
    );
    let index_bytes = format::seal_object(&keys, SealedKind::Index, &IndexFile::default());
    let id = keys.blob_id(b"some content");
    let blob = format::seal_blob(&keys, BlobKind::Data, &id, b"some content", 3);
    let pack = format::finish_pack(&keys, blob.clone(), &PackHeader { blobs: vec![] });

    for _ in 0..3000 {
        let damaged = mutate(&mut rng, &snapshot_bytes);
        if damaged != snapshot_bytes {
            assert!(
                format::open_object::<Snapshot>(&keys, "s", &damaged, SealedKind::Snapshot)
                    .is_err()
            );
        }
        let damaged = mutate(&mut rng, &index_bytes);
        if damaged != index_bytes {
            assert!(
                format::open_object::<IndexFile>(&keys, "i", &damaged, SealedKind::Index).is_err()
            );
        }
        let damaged = mutate(&mut rng, &blob);
        if damaged != blob {
            assert!(format::open_blob(&keys, BlobKind::Data, &id, &damaged, 12).is_err());
        }
        let damaged = mutate(&mut rng, &pack);
        if damaged != pack {
            // A damaged trailer or header is refused; damage in the body
            // is the blobs' business (checked above) and the pack's name.
            let _ = format::read_pack_header(&keys, "p", &damaged);
        }
        let mut garbage = vec![0u8; rng.random_range(0..300)];
        rng.fill_bytes(&mut garbage);
        assert!(format::open_object::<Lock>(&keys, "g", &garbage, SealedKind::Lock).is_err());
        assert!(format::open_object::<Tree>(&keys, "g", &garbage, SealedKind::Snapshot).is_err());
        assert!(format::read_pack_header(&keys, "g", &garbage).is_err());
        assert!(format::open_blob(&keys, BlobKind::Tree, &id, &garbage, 12).is_err());
    }
    // The intact objects still decode.
    assert!(format::open_object::<IndexFile>(&keys, "i", &index_bytes, SealedKind::Index).is_ok());
    assert_eq!(
        format::open_blob(&keys, BlobKind::Data, &id, &blob, 12).unwrap(),
        b"some content"
    );
    assert!(format::read_pack_header(&keys, "p", &pack).is_ok());
    // The wrong kind or id never opens.
    assert!(format::open_blob(&keys, BlobKind::Tree, &id, &blob, 12).is_err());
    assert!(
        format::open_object::<IndexFile>(&keys, "s", &snapshot_bytes, SealedKind::Index).is_err()
    );
}

#[test]
fn hostile_key_slots_and_configs_are_refused_cleanly() {
    const FAST: KdfParams = KdfParams {
        m_kib: 8 * 1024,
        t: 1,
        p: 1,
    };
    let mut rng = StdRng::seed_from_u64(0x5107);
    for round in 0..40 {
        let backend: Arc<dyn Backend> = Arc::new(ObjectBackend::memory().unwrap());
        Repository::init(backend.clone(), b"pw", FAST).unwrap();
        let (slot_name, _) = backend.list(Kind::Key).unwrap().remove(0);
        let slot = backend.read(Kind::Key, &slot_name).unwrap();
        let config = backend.read(Kind::Config, "config").unwrap();
        let fresh: Arc<dyn Backend> = Arc::new(ObjectBackend::memory().unwrap());
        // Half the rounds damage the slot, half the config.
        let (slot_bytes, config_bytes) = if round % 2 == 0 {
            (mutate(&mut rng, &slot), config.to_vec())
        } else {
            (slot.to_vec(), mutate(&mut rng, &config))
        };
        let name = Id::of_bytes(&slot_bytes).hex();
        fresh
            .create(Kind::Key, &name, Bytes::from(slot_bytes.clone()))
            .unwrap();
        fresh
            .create(Kind::Config, "config", Bytes::from(config_bytes.clone()))
            .unwrap();
        match Repository::open(fresh, b"pw") {
            Ok(_) => {
                // Only a change that leaves the slot's JSON meaning intact
                // (such as added white space) may still open.
                let same = |a: &[u8], b: &[u8]| {
                    serde_json::from_slice::<serde_json::Value>(a).ok()
                        == serde_json::from_slice::<serde_json::Value>(b).ok()
                };
                assert!(
                    same(&slot_bytes, &slot) && config_bytes == config,
                    "damage decoded as valid:\n{}\n{}",
                    String::from_utf8_lossy(&slot_bytes),
                    String::from_utf8_lossy(&slot)
                );
            }
            Err(
                Error::WrongPassword
                | Error::Damaged { .. }
                | Error::UnsupportedVersion { .. }
                | Error::Invalid(_),
            ) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
}
