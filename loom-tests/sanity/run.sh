#!/usr/bin/env bash
# Re-check the loom models' sanity mutations (allocator: a*, f*, h*, l*, p*, r*, s*; collector: m*; tracemalloc: t*): apply each patch
# to src/, build, run its model, expect a failure of the model (not of the build), revert.
# Needs a clean src/ (the patches are against the committed tree). Each run's output is kept in target/loom/sanity/NAME.log,
# with the last lines of the failure printed, so that the reason can be checked.
#   loom-tests/sanity/run.sh            # all
#   loom-tests/sanity/run.sh m4         # those whose name starts with m4
set -uo pipefail
cd "$(dirname "$0")/../.."
declare -A model=(
  [a1_emptiest_first]=alloc_arena_choice
  [a2_take_without_moving]=alloc_arena_choice
  [a3_decay_unmaps_arena_in_use]=alloc_arena_decay
  [a4_free_tail_left_stale]=alloc_arena_choice
  [f1_child_waits_for_registrant]=alloc_fork_registration
  [h1_let_go_with_work_queued]=alloc_abandoned_heaps
  [h2_freer_touches_heap_after_push]=alloc_abandoned_heaps
  [h3_adopt_without_claim]=alloc_abandoned_heaps
  [h4_adopt_for_free_on_a_look]=alloc_abandoned_heaps
  [h5_let_go_keeps_empty_current_pools]=alloc_abandoned_heaps
  [l1_vouch_without_count]=alloc_foreign_frees
  [l2_foreign_end_not_counted]=alloc_foreign_frees
  [l3_own_end_counted]=alloc_foreign_frees
  [l4_record_kept_at_free]=alloc_foreign_frees
  [p1_take_keeps_dirty_bit]=alloc_purge
  [r1_take_with_load_and_store]=alloc_remote_free
  [r2_bottom_moves_with_every_push]=alloc_remote_free
  [r3_chain_links_top_not_bottom]=alloc_remote_batch
  [r4_exit_forgets_batches]=alloc_remote_batch
  [r5_carried_drops_last]=alloc_remote_batch
  [r6_tail_stays_aside]=alloc_remote_batch
  [s1_letting_go_keeps_spares]=alloc_spare_pools
  [s2_exit_keeps_spares]=alloc_spare_pools
  [m1_no_version]=gc_clone_aba
  [m2_release_guards]=gc_move
  [m2mut_no_untrack]=gc_get_mut
  [m3_no_dying_root]=gc_last_drop
  [m4_ignore_condemned]=gc_upgrade
  [m5_blocking_lock]=gc_locked
  [m6_teardown_under_lock]=gc_reentrant
  [m7_no_fence]=gc_triggers
  [m8_no_drain]=gc_thread_exit
  [m8b_reset_adopted_shard]=gc_thread_exit
  [m9_scan_without_shard_locks]=gc_shards
  [m10_recheck_releases_guards]=gc_resurrect
  [m11_no_wrap_guard]=gc_version_wrap
  [m12_teardown_stops_at_a_panic]=gc_teardown_panic
  [m13_collect_waits_for_teardowns]=gc_collect_no_wait
  [m14_acquire_dying]=gc_introspect
  [m15_get_mut_no_recheck]=gc_get_mut_introspect
  [m16_no_fence]=gc_weak_maps
  [m17_uncounted_registration]=gc_watch
  [t1_record_without_recheck]=tracemalloc_start_stop
)
logs=target/loom/sanity
mkdir -p "$logs"
status=0
for name in $(printf '%s\n' "${!model[@]}" | sort); do
  [[ -n "${1:-}" && "$name" != "$1"* ]] && continue
  git apply "loom-tests/sanity/$name.patch" || { echo "$name: patch does not apply"; status=1; continue; }
  log="$logs/$name.log"
  if ! (cd loom-tests && RUSTFLAGS="--cfg loom" cargo test -q --release --target-dir ../target/loom \
        --test "${model[$name]}" --no-run) >"$log" 2>&1; then
    echo "$name: does not build with the patch (see $log)"; status=1
  elif (cd loom-tests && RUSTFLAGS="--cfg loom" cargo test -q --release --target-dir ../target/loom \
        --test "${model[$name]}" -- --test-threads 1) >"$log" 2>&1; then
    echo "$name: ${model[$name]} PASSED (the mutation was not caught)"; status=1
  else
    echo "$name: ${model[$name]} failed, as it must:"
    grep -E "panicked|Causality|deadlock|signal|assertion|exceeded" "$log" | head -3 | sed 's/^/    /'
  fi
  git apply -R "loom-tests/sanity/$name.patch"
done
exit $status
