//! Order-preserving integer encodings of floats.
//!
//! The candidate rules compare network outputs (`p[i] > p[i−1]`, `p[i] > 0.5·max`). On the
//! bit pattern of a float, read as an unsigned integer with the sign handled, integer order
//! is float order, so the comparisons are decided exactly in integers, on any target,
//! with no float unit. `0.5·max` is exact in float64 (halving never rounds there, even for
//! f32 subnormals), so the half-maximum test uses the 64-bit encoding of the widened values.
//!
//! A coarser fixed-point encoding (u8, Q0.16) would create ties the reference does not have;
//! use one only for a model whose outputs are already that coarse.

/// Maps a non-NaN f32 to a `u32` whose unsigned order is the float order
/// (`-0.0` and `+0.0` map to the same key, as they compare equal).
#[inline]
pub fn key32(x: f32) -> u32 {
    let x = if x == 0.0 { 0.0 } else { x };
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Maps a non-NaN f64 to a `u64` whose unsigned order is the float order.
#[inline]
pub fn key64(x: f64) -> u64 {
    let x = if x == 0.0 { 0.0 } else { x };
    let b = x.to_bits();
    if b & 0x8000_0000_0000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000_0000_0000
    }
}

/// The key of `0.5·m` for an f32 maximum `m`, exact (computed on the widened value).
#[inline]
pub fn half_key(m: f32) -> u64 {
    key64(0.5 * m as f64)
}

/// The key to compare an f32 against a [`half_key`].
#[inline]
pub fn wide_key(x: f32) -> u64 {
    key64(x as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn finite32() -> impl Strategy<Value = f32> {
        prop_oneof![
            any::<f32>().prop_filter("finite", |x| x.is_finite()),
            (0u32..(1 << 23)).prop_map(f32::from_bits), // subnormals
            Just(0.0f32),
            Just(-0.0f32),
            (0.0f32..=1.0),
        ]
    }

    proptest! {
        #[test]
        fn key32_preserves_order(a in finite32(), b in finite32()) {
            prop_assert_eq!(a > b, key32(a) > key32(b));
            prop_assert_eq!(a == b, key32(a) == key32(b));
        }

        #[test]
        fn half_key_decides_like_float64(p in finite32(), m in finite32()) {
            let float = (p as f64) > 0.5 * (m as f64);
            prop_assert_eq!(float, wide_key(p) > half_key(m));
        }
    }
}
