"""The fast path: which settings are candidates, how the fastest is picked, and that the trial leaves no trace."""
import itertools

import pytest
import torch

from harness import checkpoint, fastpath
from harness.fastpath import Choice, Setting

XEON_AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
EPYC_ZEN3 = "processor\t: 0\nflags\t\t: fpu avx2 fma sha_ni\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    assert fastpath.native_bf16_cpu(XEON_AMX)
    assert not fastpath.native_bf16_cpu(EPYC_ZEN3)
    assert fastpath.native_bf16_cpu("Features\t: fp asimd bf16 i8mm\n")  # Arm


def test_the_cpu_unit_tells_apart_cpus_of_one_model_name():
    assert fastpath.cpu_unit(XEON_AMX) == "AMX-BF16"
    assert fastpath.cpu_unit(EPYC_ZEN3) == "AVX2"
    assert fastpath.cpu_unit("flags\t: fpu avx2 avx512f avx512_bf16\n") == "AVX512-BF16"
    assert fastpath.cpu_unit("") is None


@pytest.mark.parametrize("amp, layout, device, native, expected", [
    ("auto", "auto", "cpu", True, ["fp32_nchw", "fp32_channels_last", "bf16_nchw", "bf16_channels_last"]),
    ("auto", "auto", "cpu", False, ["fp32_nchw", "fp32_channels_last"]),   # never emulated bf16
    ("off", "auto", "cpu", True, ["fp32_nchw", "fp32_channels_last"]),
    ("auto", "true", "cpu", True, ["fp32_channels_last", "bf16_channels_last"]),
    ("bf16", "false", "cpu", False, ["bf16_nchw"]),                          # asked for explicitly: given
    ("auto", "auto", "cuda", True, ["bf16_nchw"]),                           # a GPU keeps today's choice
    ("off", "true", "cuda", True, ["fp32_channels_last"]),
])
def test_candidates(amp, layout, device, native, expected):
    assert [s.label for s in fastpath.candidates(amp, layout, device, native)] == expected


def test_the_fastest_candidate_wins_and_a_tie_keeps_the_first():
    settings = fastpath.candidates("auto", "auto", "cpu", True)
    rates = {"fp32_nchw": 78, "fp32_channels_last": 82, "bf16_nchw": 167, "bf16_channels_last": 194}
    choice = fastpath.pick_fastest(settings, lambda s: rates[s.label])
    assert choice.setting == Setting("bf16", True) and choice.trial_images_per_s == rates
    tie = fastpath.pick_fastest(settings, lambda s: 100.0)
    assert tie.setting == Setting("off", False)


def test_images_per_s_times_only_the_steps_after_the_warm_up():
    ticks = itertools.count()
    calls = []
    rate = fastpath.images_per_s(calls.append, Setting("off", True), batch_size=64,
                                 clock=lambda: float(next(ticks)))
    # one clock tick between start and stop: TIMED_STEPS × 64 images in 1 s
    assert rate == fastpath.TRIAL_TIMED_STEPS * 64
    assert len(calls) == fastpath.TRIAL_WARMUP_STEPS + fastpath.TRIAL_TIMED_STEPS


def test_choose_on_a_fake_timer_picks_the_setting_whose_steps_are_fastest():
    now = [0.0]
    cost = {"fp32_nchw": 0.8, "fp32_channels_last": 0.4, "bf16_nchw": 0.5, "bf16_channels_last": 0.6}

    def step(setting):
        now[0] += cost[setting.label]

    choice = fastpath.choose("auto", "auto", "cpu", planned_steps=1000, batch_size=32, untimed_because=None,
                             step=step, native_bf16=True, clock=lambda: now[0])
    assert choice.setting.label == "fp32_channels_last" and choice.how == "timed"
    assert choice.trial_images_per_s["fp32_channels_last"] == pytest.approx(80.0)
    assert "fastest" in choice.describe()


@pytest.mark.parametrize("planned, allowed, how", [
    (50, None, "too few"), (1000, "compiled", "compiled"),
])
def test_choose_skips_the_trial_when_it_cannot_pay_or_cannot_be_trusted(planned, allowed, how):
    def step(setting):
        raise AssertionError("no step may run")

    choice = fastpath.choose("auto", "auto", "cpu", planned_steps=planned, batch_size=8, untimed_because=allowed,
                             step=step, native_bf16=True)
    assert choice.setting == Setting("off", False) and how in choice.how and choice.trial_images_per_s == {}


def test_a_choice_round_trips_through_its_record():
    choice = Choice(Setting("bf16", True), "timed", {"fp32_nchw": 10.0, "bf16_channels_last": 25.0})
    assert Choice.from_record(choice.record()) == choice


def test_the_trial_restores_model_optimizer_and_random_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.LazyLinear(3))
    model(torch.randn(2, 1, 8, 8))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    generator_state = torch.get_rng_state()
    expected_draw = torch.rand(3)
    torch.set_rng_state(generator_state)

    with fastpath.restored_afterwards([model, optimizer], checkpoint.capture_rng, checkpoint.restore_rng):
        for setting in fastpath.candidates("auto", "auto", "cpu", True):
            model.to(memory_format=setting.memory_format)
            with torch.autocast("cpu", dtype=setting.dtype or torch.float32, enabled=setting.dtype is not None):
                loss = model(torch.randn(4, 1, 8, 8)).float().square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.state_dict()["state"] == {}
    assert torch.equal(torch.rand(3), expected_draw)


# ---------------------------------------------------------------- in a real run

def _train(tmp_path, monkeypatch, folder: str, *flags: str) -> dict:
    import json
    from pathlib import Path

    import main
    from safetensors.torch import load_file

    (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / folder)
    assert main.main(["--model=lenet5", "--dataset=digits", "--device=cpu", "--deterministic=true",
                      "--model_save=True", *flags]) == 0
    run = next(Path("results/runs").iterdir())
    return {"summary": json.loads((run / "summary.json").read_text()), "weights": load_file(run / "model.safetensors"),
            "metrics": (run / "metrics.csv").read_text()}


@pytest.mark.slow
def test_a_deterministic_run_with_auto_equals_the_run_given_its_choice(tmp_path, monkeypatch):
    # 1 epoch of 81 steps at batch 16: long enough to time the 4 candidates of an AMX CPU (pretended here).
    monkeypatch.setattr(fastpath, "native_bf16_cpu", lambda cpuinfo=None: True)
    auto = _train(tmp_path, monkeypatch, "auto", "--epochs=1", "--batch-size=16")
    chosen = auto["summary"]
    assert chosen["fast_path"] == "timed" and len([k for k in chosen if k.startswith("trial_img_s_")]) == 4
    assert "amp" in auto["metrics"].splitlines()[0] and "channels_last" in auto["metrics"].splitlines()[0]
    given = _train(tmp_path, monkeypatch, "given", "--epochs=1", "--batch-size=16", f"--amp={chosen['amp']}",
                   f"--channels-last={str(chosen['channels_last']).lower()}")
    assert given["summary"]["fast_path"] == "given"
    assert auto["weights"].keys() == given["weights"].keys()
    assert all(torch.equal(auto["weights"][k], given["weights"][k]) for k in auto["weights"])
    assert auto["summary"]["test_top1_last"] == given["summary"]["test_top1_last"]


@pytest.mark.slow
def test_bf16_on_the_cpu_ends_within_one_point_of_fp32(tmp_path, monkeypatch):
    runs = {amp: _train(tmp_path, monkeypatch, amp, "--epochs=8", f"--amp={amp}", "--channels-last=false")
            for amp in ("off", "bf16")}
    assert runs["bf16"]["summary"]["amp"] == "bf16" and runs["off"]["summary"]["amp"] == "off"
    fp32, bf16 = (runs[a]["summary"]["test_top1_last"] for a in ("off", "bf16"))
    assert fp32 > 85 and abs(bf16 - fp32) <= 1.0, (fp32, bf16)
