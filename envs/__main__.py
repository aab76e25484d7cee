"""`python -m envs`: prints the registered env ids, one per line (parameterised families as patterns)."""

import envs

print("\n".join(envs.ENV_IDS))
print("arm_grasp_<noise>  (e.g. arm_grasp_0.1: the cube's start noise)")
