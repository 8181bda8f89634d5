import torch

from papercore.kernels.splitk import arrival_counters, sm_count, split_plan, splitk_workspace


def test_split_plan_leaves_no_empty_program():
    cpu = torch.device("cpu")
    assert sm_count(cpu) == 2
    assert split_plan(32, 4, 5, 1, cpu) == (5, 7)  # 7 steps each: the 5th program takes the last 4
    assert split_plan(32, 4, 6, 1, cpu) == (6, 6)  # 6 x 6 would leave no program empty, 6 programs
    assert split_plan(10, 4, 64, 1, cpu) == (10, 1)  # never more programs than steps
    for n_steps in range(1, 40):
        for split in range(1, 12):
            s, per = split_plan(n_steps, 3, split, 1, cpu)
            assert (s - 1) * per < n_steps <= s * per  # every program has work, all steps are covered


def test_split_plan_auto_targets_programs_per_sm():
    cpu = torch.device("cpu")  # 2 "SMs"
    assert split_plan(100, 1, 0, 4, cpu) == (8, 13)
    assert split_plan(100, 1, 0, 100, cpu) == (15, 7)  # capped at 16, then no empty program
    assert split_plan(100, 50, 0, 4, cpu)[0] == 1


def test_arrival_counters_are_shared_and_zero():
    a = arrival_counters(torch.device("cpu"), 10)
    assert a.dtype == torch.int32 and a.numel() >= 10 and not a.any()
    assert arrival_counters(torch.device("cpu"), 5) is a


def test_splitk_workspace():
    cpu = torch.device("cpu")
    part, count = splitk_workspace(3, (2, 5), 4, cpu)
    assert part.shape == (3, 2, 5) and part.dtype == torch.float32
    assert count is arrival_counters(cpu, 4)
    part, count = splitk_workspace(1, (2, 5), 4, cpu)
    assert part is count and part.numel() == 1
    assert splitk_workspace(1, (7,), 2, cpu)[0] is part  # one placeholder per device, not one per call
