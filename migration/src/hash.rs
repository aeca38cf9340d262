//! The stable hash behind sticky canaries, sampling and exemplar user hashes.
//!
//! Every replica, and every release, must put a user in the same bucket with no shared state,
//! so this is a fixed algorithm, spelled out here, never `std`'s randomly seeded `RandomState`:
//! FNV-1a (64 bit) over the parts, each followed by a `0xff` byte (which UTF-8 text never
//! contains, so `("ab", "c")` and `("a", "bc")` differ), then MurmurHash3's 64-bit finaliser
//! (`fmix64`) so that ids differing in one digit land far apart.

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// How many buckets a draw falls into: percentages and rates resolve to basis points.
pub const BUCKETS: u32 = 10_000;

/// The stable 64-bit hash of `parts` (see the module docs for the exact algorithm).
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash = FNV_OFFSET_BASIS;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    fmix64(hash)
}

/// The bucket, `0..BUCKETS`, that `value` falls in under `salt`.
pub fn bucket(salt: &str, value: &str) -> u32 {
    bucket_of(&[salt, value])
}

/// The bucket, `0..BUCKETS`, of `parts`.
pub fn bucket_of(parts: &[&str]) -> u32 {
    // `BUCKETS` divides 2^64 unevenly by under one part in 10^15: no visible bias.
    (stable_hash(parts) % u64::from(BUCKETS)) as u32
}

/// A share (a rate in `0.0..=1.0`) as a number of buckets, rounded to the nearest basis point.
pub(crate) fn share_to_buckets(share: f64) -> u32 {
    (share.clamp(0.0, 1.0) * f64::from(BUCKETS)).round() as u32
}

/// The hash of a user id shown in exemplars and logs instead of the id itself.
pub fn user_hash(user_id: &str) -> String {
    format!("{:016x}", stable_hash(&["banyan-user", user_id]))
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned values, computed independently by a 10-line Python transcription of the
    /// algorithm in the module docs; a change here moves users between backends on upgrade, so it must never
    /// happen silently.
    #[test]
    fn pinned_values_never_change() {
        for (parts, expected) in PINNED {
            assert_eq!(stable_hash(parts), *expected, "{parts:?}");
        }
    }

    const PINNED: &[(&[&str], u64)] = &[
        (&[], 0xefd0_1f60_ba99_2926),
        (&[""], 0x1bbd_5c81_3c69_a8d7),
        (&["Template.stats", "42"], 0x3e62_226e_aee5_fdd8),
        (&["canary:Template.stats", "user-1"], 0xba45_5592_9400_a935),
        (&["banyan-user", "7"], 0xda5e_b1ad_67c4_e20e),
    ];

    #[test]
    fn separators_keep_parts_apart() {
        assert_ne!(stable_hash(&["ab", "c"]), stable_hash(&["a", "bc"]));
        assert_ne!(stable_hash(&["a"]), stable_hash(&["a", ""]));
    }

    #[test]
    fn buckets_spread_evenly_over_sequential_ids() {
        // 100,000 sequential ids into 10 deciles: each within 5% of 10,000.
        let mut deciles = [0u32; 10];
        for id in 0..100_000u32 {
            deciles[(bucket("Template.stats", &id.to_string()) / 1_000) as usize] += 1;
        }
        for (i, count) in deciles.iter().enumerate() {
            assert!((9_500..=10_500).contains(count), "decile {i} has {count}");
        }
    }

    #[test]
    fn shares_round_to_basis_points() {
        assert_eq!(share_to_buckets(0.2), 2_000);
        assert_eq!(share_to_buckets(0.00005), 1);
        assert_eq!(share_to_buckets(1.5), BUCKETS);
        assert_eq!(share_to_buckets(-1.0), 0);
    }
}
