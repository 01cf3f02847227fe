#![no_main]
//! Repository objects: every decoder refuses damaged bytes without panicking.
use libfuzzer_sys::fuzz_target;
use rampart_backup::crypto::MasterKeys;
use rampart_backup::format::{self, BlobKind, IndexFile, Lock, RepoConfig, SealedKind, Snapshot};
use rampart_backup::Id;
use std::sync::OnceLock;

static KEYS: OnceLock<MasterKeys> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let keys = KEYS.get_or_init(MasterKeys::generate);
    let _ = format::open_object::<RepoConfig>(keys, "config", data, SealedKind::Config);
    let _ = format::open_object::<IndexFile>(keys, "index", data, SealedKind::Index);
    let _ = format::open_object::<Snapshot>(keys, "snapshot", data, SealedKind::Snapshot);
    let _ = format::open_object::<Lock>(keys, "lock", data, SealedKind::Lock);
    let _ = format::read_pack_header(keys, "pack", data);
    let _ = format::open_blob(keys, BlobKind::Data, &Id([0; 32]), data, 1 << 20);
    let _ = serde_json::from_slice::<format::KeySlot>(data);
});
