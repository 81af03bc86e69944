"""The Gymnasium environment: Gymnasium's own checker, seeding, the evaluator's rules, rewards from the real oracle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import plannerl.envs
from plannerl.envs import PlanningEnv
from plannerl.errors import PlannerlError

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = ROOT / "tests" / "fixtures" / "classic" / "blocksworld"


@pytest.mark.parametrize("kwargs", [{}, {"action_type": "discrete", "reward": "shaped", "observe_facts": True}])
def test_gymnasium_checker_passes(kwargs):
    env = gymnasium.make(plannerl.envs.COOKING_ID, task="burger", seeds="0:4", **kwargs)
    check_env(env.unwrapped, skip_render_check=True)


def test_same_seed_same_instance_and_every_info_lists_the_valid_actions():
    env = gymnasium.make("plannerl/Cooking-v0", task="cheese_burger", seeds="0:99")
    first, info = env.reset(seed=7)
    again, info_again = env.reset(seed=7)
    assert first == again and info == info_again
    assert {info["instance"] for _ in range(6) for _, info in [env.reset()]} != {info["instance"]}  # draws move on
    _, info = env.reset(options={"instance": 3})
    assert info["instance"] == "cheese_burger_3" and info["valid_actions"] and info["feedback"] is None
    assert len(info["valid_actions"]) == len(info["valid_actions_pddl"])


@pytest.mark.parametrize("reward", ["goal", "optimal", "shaped"])
def test_following_the_oracle_earns_each_reward_and_terminates_at_the_optimal_length(reward):
    env = PlanningEnv("burger", "0:9", reward=reward)
    _, info = env.reset(options={"instance": 4})
    problem = env.episode.problem
    rewards, terminated = [], False
    while not terminated:
        action = problem.task.actions[problem.oracle.optimal_actions(env.episode.state)[0]].pddl
        _, value, terminated, truncated, info = env.step(action)
        rewards.append(value)
        assert not truncated
    assert len(rewards) == problem.optimal_length == info["steps"]
    expected = {"goal": [0.0] * (len(rewards) - 1) + [1.0], "optimal": [1.0] * len(rewards), "shaped": [1.0] * len(rewards)}
    assert rewards == expected[reward]
    with pytest.raises(PlannerlError, match="call reset"):
        env.step(action)


def test_invalid_answers_follow_the_retry_rule():
    env = PlanningEnv("burger", "0:9", reward="optimal")
    env.reset(options={"instance": 0})
    for attempt in range(1, 6):
        _, value, terminated, truncated, info = env.step("Action: fly to the moon")
        assert value == 0.0 and info["steps"] == 0 and info["answer_kind"] != "valid" and info["feedback"]
        assert (terminated, truncated) == (False, attempt == 5)  # the fifth invalid try at one step ends it
    step_mode = PlanningEnv("burger", "0:9", invalid="step")
    step_mode.reset(options={"instance": 0})
    assert step_mode.step("nonsense")[4]["steps"] == 1


def test_discrete_actions_index_the_valid_actions_with_a_mask():
    env = PlanningEnv("burger", "0:9", action_type="discrete", reward="optimal", max_actions=64)
    _, info = env.reset(options={"instance": 2})
    valid = info["valid_actions_pddl"]
    assert list(info["action_mask"][:len(valid)]) == [1] * len(valid) and not info["action_mask"][len(valid):].any()
    best = valid.index(env.episode.problem.task.actions[env.episode.problem.oracle.optimal_actions(env.episode.state)[0]].pddl)
    assert env.step(best)[1] == 1.0
    _, value, _, _, info = env.step(63)
    assert value == 0.0 and info["answer_kind"] != "valid"


def test_a_domain_with_problem_files():
    env = gymnasium.make(plannerl.envs.DOMAIN_ID, domain=str(BLOCKS / "domain.pddl"), problems=str(BLOCKS / "p0[1-3].pddl"),
                         observe_facts=True, reward="shaped")
    obs, info = env.reset(seed=0)
    assert "(handempty)" in obs["facts"] and info["instance"] in {"p01", "p02", "p03"}
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("kwargs, message", [
    ({"task": "pizza"}, "unknown task 'pizza'"),
    ({"task": "burger", "seeds": "5:1"}, "seed"),
    ({"task": "burger", "reward": "money"}, "reward must be one of goal, optimal, shaped"),
    ({"task": "burger", "action_type": "vector"}, "action_type must be one of text, discrete"),
    ({"domain": str(BLOCKS / "domain.pddl")}, "give either task"),
    ({}, "give task"),
    ({"domain": str(ROOT / "tests" / "fixtures" / "bad" / "unsupported_requirement.pddl"), "problems": str(BLOCKS / "p01.pddl")},
     "conditional-effects"),
])
def test_bad_kwargs_are_one_clear_error_at_make(kwargs, message):
    with pytest.raises(PlannerlError) as caught:
        gymnasium.make(plannerl.envs.DOMAIN_ID, **kwargs)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_importing_plannerl_does_not_import_gymnasium():
    code = "import sys, plannerl, plannerl.train.config; print('gymnasium' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert done.stdout.strip() == "False", done.stderr
