//! Bélády's optimum: the upper bound printed beside every hit-ratio row.

use std::collections::{BinaryHeap, HashMap};

/// Next use of a key that is never requested again.
const NEVER: usize = usize::MAX;

/// Bélády's optimum hit ratio for unit-size entries: on a miss with a full cache, the key whose
/// next use is farthest away leaves, the requested key included (then it is simply not
/// admitted). No policy can get more hits at this capacity. Exact, in O(n log n).
pub fn belady_hit_ratio(capacity: usize, requests: &[u64]) -> f64 {
    if requests.is_empty() {
        return 0.0;
    }
    // Dense ids, then for every request the index of the next request of the same key.
    let mut ids: HashMap<u64, usize> = HashMap::new();
    let dense: Vec<usize> = requests
        .iter()
        .map(|key| {
            let next_id = ids.len();
            *ids.entry(*key).or_insert(next_id)
        })
        .collect();
    let mut next_use = vec![NEVER; requests.len()];
    let mut seen_at = vec![NEVER; ids.len()];
    for (i, &id) in dense.iter().enumerate().rev() {
        next_use[i] = seen_at[id];
        seen_at[id] = i;
    }

    // Resident keys with their next use; the heap may hold outdated (next use, id) pairs, which
    // are recognised by not matching `resident_next_use` and skipped.
    let mut resident_next_use: Vec<Option<usize>> = vec![None; ids.len()];
    let mut farthest: BinaryHeap<(usize, usize)> = BinaryHeap::new();
    let mut resident = 0usize;
    let mut hits = 0usize;
    for (i, &id) in dense.iter().enumerate() {
        let next = next_use[i];
        if resident_next_use[id].is_some() {
            hits += 1;
        } else if resident == capacity {
            while let Some(&(victim_next, victim)) = farthest.peek() {
                if resident_next_use[victim] == Some(victim_next) {
                    break;
                }
                farthest.pop();
            }
            match farthest.peek() {
                Some(&(victim_next, victim)) if victim_next > next => {
                    farthest.pop();
                    resident_next_use[victim] = None;
                }
                // The requested key is the one used farthest away: keep the cache as it is.
                _ => continue,
            }
        } else {
            resident += 1;
        }
        resident_next_use[id] = Some(next);
        farthest.push((next, id));
    }
    hits as f64 / requests.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::loop_requests;

    #[test]
    fn belady_evicts_the_key_used_farthest_away() {
        // Capacity 2: at key 3, key 1 is used again next and key 2 never, so 2 leaves.
        let requests = [1, 2, 3, 1, 3, 2];
        // Hits: 1 (4th), 3 (5th).
        assert_eq!(belady_hit_ratio(2, &requests), 2.0 / 6.0);
        // A loop of 3 keys in a cache of 2: the optimum keeps two of them and never admits the
        // third, so 2 requests in 3 hit once the cache is warm.
        let looped = loop_requests(3, 300);
        assert_eq!(belady_hit_ratio(2, &looped), 198.0 / 300.0);
    }

    #[test]
    fn belady_with_room_for_every_key_misses_only_first_uses() {
        let requests = [5, 6, 5, 7, 6, 5];
        assert_eq!(belady_hit_ratio(3, &requests), 3.0 / 6.0);
        assert_eq!(belady_hit_ratio(0, &requests), 0.0);
        assert_eq!(belady_hit_ratio(3, &[]), 0.0);
    }
}
