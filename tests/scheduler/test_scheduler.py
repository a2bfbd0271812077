from scheduler_helpers import make_request, make_scheduler, run_step

from pytgi.protocol import FinishReason
from pytgi.scheduler.scheduler import PromptAllowance, ProportionalCap


def test_admission_is_fifo_and_prefill_then_decode():
    scheduler = make_scheduler(budget=64)
    scheduler.add(make_request("a", 5))
    scheduler.add(make_request("b", 6))
    step, updates = run_step(scheduler)
    assert [c.request_id for c in step.chunks] == ["a", "b"]
    assert [len(c.token_ids) for c in step.chunks] == [5, 6]
    assert all(c.sample for c in step.chunks)
    assert {u.request.request_id for u in updates if u.new_token_id == 7} == {"a", "b"}
    step, _ = run_step(scheduler)
    assert [(c.request_id, c.token_ids, c.start_position) for c in step.chunks] == [
        ("a", (7,), 5),
        ("b", (7,), 6),
    ]
    assert {n.request_id for n in step.new_requests} == set()


def test_new_request_data_sent_once():
    scheduler = make_scheduler()
    scheduler.add(make_request("a", 3))
    step, _ = run_step(scheduler)
    assert [n.request_id for n in step.new_requests] == ["a"]
    step, _ = run_step(scheduler)
    assert step.new_requests == ()


def test_long_prompt_is_chunked_alongside_decodes():
    scheduler = make_scheduler(budget=8)
    scheduler.add(make_request("short", 3, max_new_tokens=10))
    run_step(scheduler)
    scheduler.add(make_request("long", 20, max_new_tokens=2))
    sizes = []
    for _ in range(4):
        step, _ = run_step(scheduler)
        sizes.append({c.request_id: (len(c.token_ids), c.sample) for c in step.chunks})
        assert step.num_tokens <= 8
    # The running decode always gets its token; the long prompt gets the rest.
    assert sizes[0] == {"short": (1, True), "long": (7, False)}
    assert sizes[1] == {"short": (1, True), "long": (7, False)}
    assert sizes[2] == {"short": (1, True), "long": (6, True)}
    assert sizes[3] == {"short": (1, True), "long": (1, True)}


def test_prefill_is_capped_while_others_decode():
    scheduler = make_scheduler(budget=32, prefill_while_decoding=4)
    scheduler.add(make_request("first", 20, max_new_tokens=10))
    step, _ = run_step(scheduler)
    assert [len(c.token_ids) for c in step.chunks] == [20]  # nobody decodes yet: the whole budget
    scheduler.add(make_request("a", 6, max_new_tokens=2, first_token=100))
    scheduler.add(make_request("b", 3, max_new_tokens=2, first_token=200))
    sizes = []
    for _ in range(3):
        step, _ = run_step(scheduler)
        sizes.append({c.request_id: len(c.token_ids) for c in step.chunks})
    # 4 prompt tokens per step while "first" decodes; "b" waits for "a" (FIFO).
    assert sizes[0] == {"first": 1, "a": 4}
    assert sizes[1] == {"first": 1, "a": 2, "b": 2}
    assert sizes[2] == {"first": 1, "a": 1, "b": 1}


def test_the_default_cap_grows_with_the_decoding_requests():
    scheduler = make_scheduler(budget=64, default_cap=ProportionalCap(per_decoding_request=2, floor=3))
    scheduler.add(make_request("first", 5, max_new_tokens=20))
    step, _ = run_step(scheduler)
    assert [len(c.token_ids) for c in step.chunks] == [5]  # nobody decodes yet: the whole budget
    scheduler.add(make_request("a", 10, max_new_tokens=20, first_token=100))
    step, _ = run_step(scheduler)
    assert {c.request_id: len(c.token_ids) for c in step.chunks} == {"first": 1, "a": 3}  # the floor
    for _ in range(3):
        run_step(scheduler)  # "a" ends its prompt (3 + 3 + 3 + 1) and decodes
    for i in range(3):
        scheduler.add(make_request(f"late{i}", 20, max_new_tokens=20, first_token=200 + 30 * i))
    step, _ = run_step(scheduler)
    assert {c.request_id: len(c.token_ids) for c in step.chunks} == {"first": 1, "a": 1, "late0": 4}
    step, _ = run_step(scheduler)
    assert {c.request_id: len(c.token_ids) for c in step.chunks} == {"first": 1, "a": 1, "late0": 4}


def test_a_set_cap_replaces_the_default_one():
    scheduler = make_scheduler(budget=64, prefill_while_decoding=7, default_cap=ProportionalCap(2, 3))
    scheduler.add(make_request("first", 5, max_new_tokens=20))
    run_step(scheduler)
    scheduler.add(make_request("a", 20, max_new_tokens=2, first_token=100))
    step, _ = run_step(scheduler)
    assert {c.request_id: len(c.token_ids) for c in step.chunks} == {"first": 1, "a": 7}


def test_the_allowance_finishes_a_prompt_that_only_just_exceeds_it():
    prompts = PromptAllowance(tokens=8, slack=2)
    assert prompts.take(10, budget=64) == 10  # 8 + 2: the whole prompt
    assert (prompts.tokens, prompts.slack) == (0, 0)
    assert prompts.take(1, budget=64) == 0  # spent, slack too
    prompts = PromptAllowance(tokens=8, slack=2)
    assert prompts.take(11, budget=64) == 8  # 3 over: chunked as before
    assert prompts.take(2, budget=64) == 2  # the slack finishes a short one
    assert PromptAllowance(tokens=8, slack=2).take(10, budget=9) == 8  # never past the step's budget


def test_the_default_cap_finishes_a_prompt_with_its_tail_allowance():
    cap = ProportionalCap(per_decoding_request=2, floor=8, tail_share=0.25)  # 8 tokens, 2 of slack
    scheduler = make_scheduler(budget=64, default_cap=cap)
    scheduler.add(make_request("first", 5, max_new_tokens=20))
    run_step(scheduler)
    scheduler.add(make_request("a", 10, max_new_tokens=20, first_token=100))
    scheduler.add(make_request("b", 11, max_new_tokens=20, first_token=200))
    step, _ = run_step(scheduler)
    assert {c.request_id: (len(c.token_ids), c.sample) for c in step.chunks} == {"first": (1, True), "a": (10, True)}
    step, _ = run_step(scheduler)
    assert {c.request_id: len(c.token_ids) for c in step.chunks} == {"first": 1, "a": 1, "b": 8}
    step, _ = run_step(scheduler)
    assert {c.request_id: len(c.token_ids) for c in step.chunks} == {"first": 1, "a": 1, "b": 3}


def test_the_budget_tail_finishes_a_prompt_while_nothing_decodes():
    scheduler = make_scheduler(budget=10, budget_tail=2)
    scheduler.add(make_request("a", 6, max_new_tokens=3))
    scheduler.add(make_request("b", 6, max_new_tokens=3, first_token=100))
    scheduler.add(make_request("c", 3, max_new_tokens=3, first_token=200))
    step, _ = run_step(scheduler)
    # 6 + 6 = 12: "b" finished on the tail; nothing left for "c".
    assert {c.request_id: (len(c.token_ids), c.sample) for c in step.chunks} == {"a": (6, True), "b": (6, True)}
    step, _ = run_step(scheduler)  # now "a" and "b" decode: the budget is exact again
    assert {c.request_id: len(c.token_ids) for c in step.chunks} == {"a": 1, "b": 1, "c": 3}
    scheduler = make_scheduler(budget=10, budget_tail=2)
    scheduler.add(make_request("a", 6, max_new_tokens=3))
    scheduler.add(make_request("b", 7, max_new_tokens=3, first_token=100))
    step, _ = run_step(scheduler)
    assert {c.request_id: len(c.token_ids) for c in step.chunks} == {"a": 6, "b": 4}  # 3 over: chunked


def test_a_set_cap_has_no_tail_allowance():
    scheduler = make_scheduler(budget=64, prefill_while_decoding=8, default_cap=ProportionalCap(2, 8, 0.25))
    scheduler.add(make_request("first", 5, max_new_tokens=20))
    run_step(scheduler)
    scheduler.add(make_request("a", 9, max_new_tokens=2, first_token=100))
    step, _ = run_step(scheduler)
    assert {c.request_id: len(c.token_ids) for c in step.chunks} == {"first": 1, "a": 8}


def test_finish_on_length_and_eos_frees_blocks():
    scheduler = make_scheduler()
    scheduler.add(make_request("len", 4, max_new_tokens=2))
    run_step(scheduler)
    _, updates = run_step(scheduler)
    assert updates[0].finish_reason is FinishReason.LENGTH
    scheduler.add(make_request("eos", 4, max_new_tokens=10))
    _, updates = run_step(scheduler, token_id=0)
    assert updates[0].finish_reason is FinishReason.EOS_TOKEN
    assert not scheduler.has_work()
    assert scheduler.kv_cache.num_blocks_in_use == 0


def test_length_is_checked_before_eos():
    scheduler = make_scheduler()
    scheduler.add(make_request("a", 4, max_new_tokens=1))
    _, updates = run_step(scheduler, token_id=0)
    assert updates[0].finish_reason is FinishReason.LENGTH


def test_abort_frees_blocks_waiting_or_running():
    scheduler = make_scheduler(budget=4)
    scheduler.add(make_request("a", 8))
    scheduler.add(make_request("b", 8))
    run_step(scheduler)  # a is mid-prefill, b waits
    assert scheduler.kv_cache.num_blocks_in_use > 0
    scheduler.finish("a", None)
    scheduler.finish("b", None)
    assert scheduler.kv_cache.num_blocks_in_use == 0
    step = scheduler.schedule()
    assert step.is_empty
    scheduler.add(make_request("c", 2))
    step, _ = run_step(scheduler)
    # The executor hears about the aborted request that it had seen.
    assert step.finished_request_ids == ("a",)


def test_prefix_hit_skips_cached_blocks():
    scheduler = make_scheduler(block_size=4)
    scheduler.add(make_request("a", 10, max_new_tokens=1))
    run_step(scheduler)
    assert not scheduler.has_work()
    scheduler.add(make_request("b", 10, max_new_tokens=1))
    step, _ = run_step(scheduler)
    (chunk,) = step.chunks
    assert chunk.start_position == 8 and len(chunk.token_ids) == 2


def test_waits_when_blocks_run_out_then_proceeds():
    # 4 blocks of 4 tokens: one request of 10 + 4 new needs 4 blocks.
    scheduler = make_scheduler(num_blocks=4, block_size=4, prefix_caching=False)
    scheduler.add(make_request("a", 10, max_new_tokens=4))
    scheduler.add(make_request("b", 10, max_new_tokens=4, first_token=50))
    step, _ = run_step(scheduler)
    assert [c.request_id for c in step.chunks] == ["a"]  # b waits: only 1 block left
    finished = set()
    for _ in range(20):
        _, updates = run_step(scheduler)
        finished |= {u.request.request_id for u in updates if u.finish_reason}
        if not scheduler.has_work():
            break
    assert finished == {"a", "b"}
    assert scheduler.kv_cache.num_blocks_in_use == 0


def test_preemption_resumes_without_losing_tokens():
    # Two requests both admitted, then decode growth exhausts the blocks.
    scheduler = make_scheduler(num_blocks=5, block_size=4, prefix_caching=False)
    scheduler.add(make_request("a", 7, max_new_tokens=8))
    scheduler.add(make_request("b", 7, max_new_tokens=8, first_token=50))
    outputs: dict[str, list[int]] = {"a": [], "b": []}
    for step_index in range(60):
        _, updates = run_step(scheduler, token_id=100 + step_index)
        for update in updates:
            if update.new_token_id is not None:
                outputs[update.request.request_id].append(update.new_token_id)
        if not scheduler.has_work():
            break
    assert scheduler.num_preemptions >= 1
    assert len(outputs["a"]) == 8 and len(outputs["b"]) == 8
    assert scheduler.kv_cache.num_blocks_in_use == 0


def test_max_batch_size_caps_running():
    scheduler = make_scheduler(max_batch_size=2)
    for name in "abc":
        scheduler.add(make_request(name, 2))
    step, _ = run_step(scheduler)
    assert [c.request_id for c in step.chunks] == ["a", "b"]
    assert scheduler.num_waiting == 1
