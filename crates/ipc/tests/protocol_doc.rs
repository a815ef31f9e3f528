//! The named-mode socket name that `docs/protocol.md` derives by hand (HMAC-SHA256 of the label,
//! app id and user id, in hex) is the one the host binds and the game connects to.

use crosscast_ipc::SessionKey;

#[test]
fn the_documented_socket_name_is_what_the_host_binds() {
    let key = SessionKey::from_bytes(std::array::from_fn(|i| i as u8));
    assert_eq!(
        key.socket_name("mygame", "alice"),
        "crosscast-30df7cc2f6f5e028731c08daeeff21325b7b888ea6c63d413d26341a61fe164d"
    );
}
