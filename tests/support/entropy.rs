//! Byte entropy: how random a capture's payload looks (encrypted ≈ 8 bits per byte).

/// Shannon entropy of a byte sequence, in bits per byte (8.0 for uniform noise).
pub fn entropy_bits_per_byte(bytes: &[u8]) -> f64 {
    let mut counts = [0usize; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let n = bytes.len().max(1) as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}
