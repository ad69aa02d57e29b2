//! Snippet streams (`bmn_edge::snippets::SnippetReader` over a `&[u8]` reader): raw
//! little-endian float32 rows or a `.npy` stream, the format given or recognised.
//!
//! The first input byte chooses the options: bits 0–1 the format (recognised, raw, `.npy`,
//! recognised), bits 2–7 the width (0: none given, else `C = 1..=63`); the rest is the
//! stream.
//!
//! Properties: no panic; rows are read until the end or an error; an error's `snippets()`
//! is the rows read before it; raw rows never add up to more bytes than the stream has; a
//! `.npy` stream yields at most the rows its header declares.
#![no_main]

use bmn_edge::snippets::{SnippetFormat, SnippetReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&options, stream)) = data.split_first() else {
        return;
    };
    let format = match options & 3 {
        1 => Some(SnippetFormat::Raw),
        2 => Some(SnippetFormat::Npy),
        _ => None,
    };
    let channels = match (options >> 2) as usize {
        0 => None,
        c => Some(c),
    };
    let Ok(mut reader) = SnippetReader::new(stream, format, channels) else {
        return;
    };
    let c = reader.channels();
    assert!(c >= 1);
    if let Some(want) = channels {
        assert_eq!(c, want);
    }
    if let Some(f) = format {
        assert_eq!(reader.format(), f);
    }
    let mut row = vec![0.0f32; c];
    let mut rows = 0u64;
    loop {
        match reader.next_row(&mut row) {
            Ok(true) => rows += 1,
            Ok(false) => break,
            Err(e) => {
                assert_eq!(e.snippets(), rows);
                break;
            }
        }
        assert_eq!(reader.snippets(), rows);
        if let Some(declared) = reader.declared() {
            assert!(rows <= declared);
        }
    }
    assert_eq!(reader.snippets(), rows);
    if reader.format() == SnippetFormat::Raw {
        assert!(rows as u128 * c as u128 * 4 <= stream.len() as u128);
    }
    // A wrong-sized row buffer is an error, not a panic.
    assert!(reader.next_row(&mut vec![0.0f32; c + 1]).is_err());
});
