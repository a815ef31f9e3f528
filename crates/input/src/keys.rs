//! Names for evdev key and button codes, for scripts (`linux/input-event-codes.h`).

/// The evdev code of a key name (case-insensitive): letters, digits, `f1`..`f12`, arrows and
/// the usual named keys.
pub fn key_code(name: &str) -> Option<u32> {
    let n = name.to_ascii_lowercase();
    let n = n.strip_prefix("key_").unwrap_or(&n);
    const LETTERS: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";
    // evdev codes of a..z, in alphabetical order.
    const LETTER_CODES: [u32; 26] = [
        30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38, 50, 49, 24, 25, 16, 19, 31, 20, 22, 47, 17,
        45, 21, 44,
    ];
    if let [c] = n.as_bytes() {
        if let Some(i) = LETTERS.iter().position(|l| l == c) {
            return Some(LETTER_CODES[i]);
        }
        if c.is_ascii_digit() {
            // 1..9 are 2..10, 0 is 11.
            return Some(if *c == b'0' {
                11
            } else {
                u32::from(c - b'0') + 1
            });
        }
    }
    if let Some(f) = n.strip_prefix('f').and_then(|d| d.parse::<u32>().ok()) {
        return match f {
            1..=10 => Some(58 + f),
            11 => Some(87),
            12 => Some(88),
            _ => None,
        };
    }
    Some(match n {
        "esc" | "escape" => 1,
        "minus" => 12,
        "equal" => 13,
        "backspace" => 14,
        "tab" => 15,
        "enter" | "return" => 28,
        "leftctrl" | "ctrl" => 29,
        "leftshift" | "shift" => 42,
        "rightshift" => 54,
        "leftalt" | "alt" => 56,
        "space" => 57,
        "capslock" => 58,
        "rightctrl" => 97,
        "rightalt" => 100,
        "home" => 102,
        "up" => 103,
        "pageup" => 104,
        "left" => 105,
        "right" => 106,
        "end" => 107,
        "down" => 108,
        "pagedown" => 109,
        "insert" => 110,
        "delete" => 111,
        _ => return None,
    })
}

/// The evdev code of a mouse button name: `left`, `right`, `middle`, `side`, `extra`.
pub fn button_code(name: &str) -> Option<u32> {
    Some(match name.to_ascii_lowercase().as_str() {
        "left" => 0x110,
        "right" => 0x111,
        "middle" => 0x112,
        "side" | "back" => 0x113,
        "extra" | "forward" => 0x114,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_input_event_codes() {
        assert_eq!(key_code("a"), Some(30));
        assert_eq!(key_code("Z"), Some(44));
        assert_eq!(key_code("q"), Some(16));
        assert_eq!(key_code("1"), Some(2));
        assert_eq!(key_code("0"), Some(11));
        assert_eq!(key_code("KEY_LEFT"), Some(105));
        assert_eq!(key_code("f1"), Some(59));
        assert_eq!(key_code("f12"), Some(88));
        assert_eq!(key_code("space"), Some(57));
        assert_eq!(key_code("nope"), None);
        assert_eq!(button_code("middle"), Some(0x112));
    }
}
