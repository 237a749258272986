/* SPDX-License-Identifier: MIT */
/*
 * test_list.h -- every test, named once.
 *
 * CV_CONFORMANCE_TESTS run once per backend (the list of backends grows
 * without this file changing) with TEST_BACKEND set and made the default;
 * CV_UNIT_TESTS run once. A name says which rule (rN) or scenario (sN) of
 * docs/SPEC.md it checks, or which backend's internals it exercises.
 * Each section belongs to one test file; add a line `X(name) \` to it.
 *
 * By feature (CV_TEST_FILTER globs; `build/tests/unit --help`):
 *   isolation of copies (R9)   r9_*, map_random_ops_match_model,
 *                              *_isolation_*, *_random_snapshots_*
 *   allocation failure         oom_*, map_oom_every_write, *_oom_*,
 *                              map_writes_without_allocation,
 *                              *_writes_without_allocation
 *   value hooks (R14)          r14*, *_hooks_balance
 *   iteration (R10)            r10_*, *_foreach_*
 *   tokens, reset (R5-R7)      r5_*, r6_*, r7_*, s1_*, s11_*, s16_*
 *   run, enter, exit (R11-13)  r11_*, r12_*, r13_*, s15_*
 *   threads and fibers         r13_*, r16_*, s12_*, s13_*, fiber_*, r18-25
 *   backend internals          hamt_*, chainmap_*, adaptive_*
 *   the test build itself      debug_* (check() after every write)
 *   copy + release's spare     spare_*, r16_spare_*, r9_copies_made_from_the_spare_*
 * Every map-level test drives the backend through tests/support/mapmodel.h
 * (a model, the generator, the OOM loop).
 */
#ifndef CV_TEST_LIST_H
#define CV_TEST_LIST_H

/* ---- per backend ------------------------------------------------------ */

/* tests/test_rules.c: R1-R16 */
#define CV_RULE_TESTS(X)                     \
    X(r1_var_new_rejects_null)              \
    X(r1_name_is_copied)                    \
    X(r2_same_name_different_keys)          \
    X(r2_context_keeps_var_alive)           \
    X(r2_token_keeps_var_alive)             \
    X(r3_get_value_default_lookup)           \
    X(r3_get_sees_every_change_through_the_cache)          \
    X(r3_cache_after_exit_is_exact)          \
    X(r3_inline_get_matches_the_call)        \
    X(r4_get_or_explicit_beats_var_default) \
    X(r5_set_returns_token)                 \
    X(r6_reset_restores_recorded_value)     \
    X(r6_reset_check_order)                 \
    X(r7_token_var_chains)                  \
    X(r8_new_copy_and_copy_of_any)          \
    X(r9_copy_isolation_both_ways)          \
    X(r9_generations_are_snapshots)         \
    X(r10_get_len_foreach_each_pair_once)   \
    X(r10_foreach_over_snapshot_while_writing) \
    X(r11_run_result_visibility_and_reentry) \
    X(r11_run_unwinds_what_fn_left_entered)  \
    X(r11_exit_inside_run_is_refused)        \
    X(r11_cleanup_inside_run) \
    X(r11_cleanup_inside_run_then_block_reused) \
    X(r12_enter_exit_nest_like_a_stack)     \
    X(r12_deep_nesting_past_the_generation_ring) \
    X(r13_get_never_allocates)              \
    X(r14_hooks_balance_over_every_holder)  \
    X(r16_entered_context_outlives_release) \
    X(r16_token_keeps_context_alive)        \

/* tests/test_scenarios.c: S1-S16 */
#define CV_SCENARIO_TESTS(X)                 \
    X(s1_set_reset_tokens)               \
    X(s2_default_value)                  \
    X(s3_run_in_copied_context)          \
    X(s4_child_task_copy_and_empty_context) \
    X(s5_concurrent_requests)            \
    X(s6_nested_calls_share_context)     \
    X(s7_recursive_tasks_keep_their_level) \
    X(s8_recursion_in_one_context)       \
    X(s9_sleeping_tasks_keep_values)     \
    X(s10_copy_shares_mutable_record)    \
    X(s11_token_var_chains)              \
    X(s12_threads_are_isolated)          \
    X(s13_copy_runs_in_worker_thread)    \
    X(s14_callbacks_in_given_context)    \
    X(s15_context_entered_once)          \
    X(s16_reset_misuse)                  \

/* tests/test_hooks.c: hooks that call back into ctxvar (R14a, R14b) */
#define CV_HOOK_TESTS(X)                     \
    X(r14a_reset_to_missing_whose_hook_sets_the_var) \
    X(r14a_reset_restoring_then_token_release) \
    X(r14a_plain_set_whose_replaced_value_sets_the_var) \
    X(r14a_hook_from_token_release)          \
    X(r14a_hook_from_context_release)        \
    X(r14a_hook_from_var_release)            \
    X(r14a_hook_from_run_unwind)             \
    X(r14a_hook_from_thread_cleanup)         \
    X(r14a_hook_from_thread_exit)            \
    X(r14a_writes_releasing_many_writing_values) \
    X(r14b_count_never_passes_zero_while_held) \

/* tests/test_maps.c: the backend interface against a model */
#define CV_MAP_TESTS(X)                      \
    X(map_random_ops_match_model)            \
    X(map_oom_every_write)                   \
    X(map_empty_is_null)                     \
    X(map_writes_without_allocation)         \
    X(map_value_hooks_balance)               \

/* ---- once ------------------------------------------------------------- */

/* tests/test_api.c: errors, bad input, backends registry, allocator;
 * tests/test_debug.c: the test build checks every write */
#define CV_API_TESTS(X)                      \
    X(errors_have_names)                     \
    X(bad_input_nulls)                       \
    X(backends_registry)                     \
    X(r15_default_backend_order)             \
    X(allocator_hook_sees_every_allocation)  \
    X(errors_every_code_named)               \
    X(allocator_reset_and_refusal)           \
    X(allocator_swap_returns_cached_blocks)  \
    X(debug_check_runs_after_every_write)    \

/* tests/test_threads.c */
#define CV_THREAD_TESTS(X)                   \
    X(r13_new_thread_starts_empty_and_cleans_up_at_exit) \
    X(r16_release_from_other_threads)        \
    X(r13_enter_race_one_winner)             \
    X(r9_concurrent_copies_of_one_context)   \

/* tests/test_oom.c: allocation failure in every allocating call */
#define CV_OOM_TESTS(X)                      \
    X(oom_with_warm_free_list)               \
    X(oom_set_every_size_shared_and_not)     \
    X(oom_reset_shared_and_not)              \
    X(oom_contexts_and_vars)                 \
    X(oom_first_use_of_a_thread)             \
    X(oom_enter_and_run_never_allocate)      \

/* tests/test_hamt.c */
#define CV_HAMT_TESTS(X)                     \
    X(hamt_empty_map_is_null)               \
    X(hamt_same_value_allocates_nothing)    \
    X(hamt_shared_set_copies_only_the_path)  \
    X(hamt_bitmap_array_transitions)        \
    X(hamt_array_children_collapse_on_convert)  \
    X(hamt_collision_nodes)                 \
    X(hamt_every_depth_and_full_iteration)  \
    X(hamt_foreach_stops_early)             \
    X(hamt_canonical_after_any_history)     \
    X(hamt_million_keys)                    \
    X(hamt_snapshot_chains)                 \
    X(hamt_oom_every_path)                  \
    X(hamt_value_hooks_balance)             \

/* tests/test_chainmap.c */
#define CV_CHAINMAP_TESTS(X)                 \
    X(chainmap_isolation_both_ways_at_every_depth) \
    X(chainmap_random_snapshots_match_model) \
    X(chainmap_random_snapshots_colliding_hashes) \
    X(chainmap_tombstones_hide_lower_layers) \
    X(chainmap_empty_top_layer_is_popped) \
    X(chainmap_private_parent_absorbed_on_next_write) \
    X(chainmap_regress_pop_leaves_shared_top_unabsorbed) \
    X(chainmap_compaction_exactly_at_the_bound) \
    X(chainmap_compaction_releases_shadowed_values) \
    X(chainmap_long_chain_of_copies_stays_bounded) \
    X(chainmap_history_merges_keep_depth_and_snapshots) \
    X(chainmap_history_bytes_per_snapshot_bounded) \
    X(chainmap_history_over_a_big_layer_does_not_recopy_the_top) \
    X(chainmap_history_releases_shadowed_values) \
    X(chainmap_oom_every_allocation_of_a_merge) \
    X(chainmap_merge_keeping_nothing_is_the_base) \
    X(chainmap_oom_every_allocating_path) \
    X(chainmap_writes_without_allocation) \
    X(chainmap_block_cache_reuses_a_freed_layer) \
    X(chainmap_block_cache_drained_by_cleanup) \
    X(chainmap_block_cache_follows_the_allocator) \
    X(chainmap_block_cache_drained_at_thread_exit) \
    X(chainmap_block_cache_oom_with_warm_cache) \
    X(chainmap_borrowed_key_keeps_the_var_until_the_owner_goes) \
    X(chainmap_borrowed_slot_parked_by_absorb_owns_its_key) \

/* tests/test_adaptive.c */
#define CV_ADAPTIVE_TESTS(X)                 \
    X(adaptive_promotes_above_k_demotes_at_half) \
    X(adaptive_foreach_stops_early)          \
    X(adaptive_isolation_across_promote_and_demote) \
    X(adaptive_random_snapshots_match_model) \
    X(adaptive_writes_without_allocation)    \
    X(adaptive_oom_every_allocating_path)    \

/* tests/test_fibers.c, tests/test_fiber_migrate.c: execution states and
 * bound callbacks (R17-R25) on the ucontext fiber scheduler */
#define CV_FIBER_TESTS(X)                    \
    X(fiber_s5_concurrent_requests)          \
    X(fiber_s7_recursive_fibers_keep_their_level) \
    X(fiber_s9_sleeping_fibers_keep_values)  \
    X(fiber_s14_callbacks_in_given_context)  \
    X(fiber_yield_inside_run_keeps_context_to_itself) \
    X(fiber_issue15_reproducer)              \
    X(fiber_yield_inside_nested_enters_and_between_set_and_reset) \
    X(fiber_token_of_another_fiber_is_refused) \
    X(r18_cache_exact_across_swaps)          \
    X(r18_deep_stacks_exit_exactly_after_swaps) \
    X(r22_release_exits_what_the_state_entered) \
    X(r21_fibers_migrate_between_threads)    \
    X(r23_bound_captures_a_copy_now)         \
    X(r24_bound_in_given_context_and_entered_elsewhere) \
    X(oom_exec_and_bound)                    \

#define CV_EXEC_THREAD_TESTS(X)              \
    X(r20_state_in_place_elsewhere_is_refused) \

/* tests/test_gaps.c: what mutation testing found only the fuzz corpus or
 * the property run checking (per backend), and forced races (once) */
#define CV_GAP_TESTS(X)                      \
    X(gaps_foreach_callback_inserts_and_deletes) \
    X(gaps_foreach_callback_writes_a_shared_map) \
    X(gaps_null_value_is_a_value)            \
    X(gaps_null_values_in_a_big_map)         \
    X(gaps_null_default)                     \
    X(gaps_oom_first_use_unmakes_the_base)   \
    X(gaps_deleted_var_not_held_after_history) \
    X(gaps_oom_write_to_a_shared_map_keeps_the_copy) \

#define CV_RACE_TESTS(X)                     \
    X(race_enter_forced_one_winner)          \
    X(race_release_while_enter_is_parked)    \
    X(gaps_allocator_refuses_half_a_hook)    \
    X(gaps_exit_past_the_ring_never_reuses_a_generation) \
    X(gaps_var_freed_before_its_default_hook) \

/* tests/test_spare.c: the spare reference of copy + release (R9, R16) */
#define CV_SPARE_TESTS(X)                    \
    X(r16_spare_given_back_when_its_context_exits) \
    X(r16_spare_given_back_by_run_unwind)    \
    X(r16_spare_given_back_by_a_write)       \
    X(r9_copies_made_from_the_spare_are_isolated) \
    X(spare_write_after_copy_release_costs_as_without) \
    X(spare_of_an_empty_map_takes_the_copied_backend) \
    X(spare_thread_exit_leaves_nothing)      \
    X(spare_exec_release_gives_it_back)      \

#define CV_CONFORMANCE_TESTS(X) \
    CV_RULE_TESTS(X) CV_SCENARIO_TESTS(X) CV_HOOK_TESTS(X) CV_MAP_TESTS(X) \
    CV_OOM_TESTS(X) CV_FIBER_TESTS(X) CV_GAP_TESTS(X) CV_SPARE_TESTS(X)
#define CV_UNIT_TESTS(X) \
    CV_API_TESTS(X) CV_THREAD_TESTS(X) CV_EXEC_THREAD_TESTS(X) CV_RACE_TESTS(X) \
    CV_HAMT_TESTS(X) CV_CHAINMAP_TESTS(X) CV_ADAPTIVE_TESTS(X)

#endif
