//! One frame of a `--frames-dir`: `bmn_edge::pixels::frames::decode_image` (JPEG or PNG by
//! its magic bytes; a JPEG without its end-of-image marker refused).
//!
//! The first byte chooses the mode. Even: the rest is decoded as a file. Odd: the rest
//! (after two bytes of width and height) is taken as pixels, encoded as PNG (bit 1 clear)
//! or JPEG (set) with the image crate, then cut at a length and one byte changed as further
//! bytes say, and decoded — near-valid files, which the mutator alone reaches slowly.
//!
//! Properties: no panic; a decoded image has a size of at least 1x1 and `w·h·3` bytes of
//! RGB; an encoded file decodes whole to its own size; a JPEG cut before its last two
//! bytes is refused.
#![no_main]

use bmn_edge::pixels::frames::decode_image;
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) -> Option<(u32, u32)> {
    let img = decode_image(bytes).ok()?;
    let rgb = img.to_rgb8();
    assert!(rgb.width() >= 1 && rgb.height() >= 1);
    assert_eq!(rgb.as_raw().len(), rgb.width() as usize * rgb.height() as usize * 3);
    Some((rgb.width(), rgb.height()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        check(rest);
        return;
    }
    let [w, h, pixels @ ..] = rest else {
        return;
    };
    let (w, h) = (u32::from(w % 32) + 1, u32::from(h % 32) + 1);
    let need = (w * h * 3) as usize;
    let mut raw = pixels.iter().copied().cycle().take(need).collect::<Vec<u8>>();
    raw.resize(need, 128);
    let img = image::RgbImage::from_raw(w, h, raw).expect("w·h·3 bytes");
    let jpeg = mode & 2 != 0;
    let format = if jpeg { image::ImageFormat::Jpeg } else { image::ImageFormat::Png };
    let mut file = std::io::Cursor::new(Vec::new());
    img.write_to(&mut file, format).expect("encoding a small image");
    let file = file.into_inner();
    assert_eq!(check(&file), Some((w, h)), "an encoded {format:?} decodes whole");
    // Cut it and change a byte: refused or decoded, never a panic.
    let cut = pixels.first().map_or(file.len(), |&c| file.len() * usize::from(c) / 255);
    let mut bad = file[..cut.min(file.len())].to_vec();
    if let (Some(&at), Some(&v)) = (pixels.get(1), pixels.get(2)) {
        if !bad.is_empty() {
            let i = usize::from(at) * bad.len() / 256;
            bad[i] ^= v;
        }
    }
    let decoded = check(&bad);
    // The end marker after any trailing padding (0x00, CR, LF, space), as the reader looks.
    let end = bad.iter().rposition(|&b| !matches!(b, 0x00 | b'\n' | b'\r' | b' ')).map_or(0, |i| i + 1);
    if jpeg && bad.len() + 2 <= file.len() && !bad[..end].ends_with(&[0xFF, 0xD9]) {
        assert_eq!(decoded, None, "a JPEG cut before its end marker is refused");
    }
});
