//! Cheap per-request randomness: routing draws and request ids come from a
//! thread-local wyrand (no lock, no syscall); sticky ids from the OS-seeded `rand` RNG.
use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = Cell::new(rand::random::<u64>() | 1);
}

/// wyrand: fast, statistically fine for load splitting (not for secrets).
#[inline]
pub(super) fn next_u64() -> u64 {
    STATE.with(|s| {
        let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
        s.set(x);
        let t = (x as u128).wrapping_mul((x ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

/// Uniform draw in `[0, 10000)` (basis points), without modulo bias worth mentioning.
#[inline]
pub(super) fn rand_bp() -> u32 {
    (((next_u64() >> 32) * 10_000) >> 32) as u32
}

/// A fresh `x-request-id`: 32 hex digits (on the stack: no formatting machinery per request).
pub(super) fn request_id() -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (half, word) in out.chunks_exact_mut(16).zip([next_u64(), next_u64()]) {
        for (i, b) in half.iter_mut().enumerate() {
            *b = HEX[((word >> (60 - 4 * i)) & 0xf) as usize];
        }
    }
    out
}

/// A fresh sticky client id for the `Set-Cookie` (unpredictable: it picks a version).
pub(super) fn sticky_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rand_bp_is_in_range_and_roughly_uniform() {
        let mut below = 0;
        for _ in 0..100_000 {
            let r = super::rand_bp();
            assert!(r < 10_000);
            if r < 2_000 {
                below += 1;
            }
        }
        assert!((19_000..21_000).contains(&below), "{below}");
    }
}
