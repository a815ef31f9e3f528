//! The committed `include/crosscast.h` is exactly what cbindgen generates from the source:
//! a C program built against the header calls the functions the library exports. After a
//! change to the API, regenerate it with `CROSSCAST_BLESS=1 cargo test -p crosscast-sdk-c
//! --test header` and commit the result.

use std::path::Path;

#[test]
fn the_committed_header_matches_the_source() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = crate_dir.join("include/crosscast.h");
    if std::env::var_os("CROSSCAST_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/crosscast.h is stale: regenerate it with CROSSCAST_BLESS=1 cargo test -p \
         crosscast-sdk-c --test header, and commit it"
    );
}
