"""Review: what a policy change would do, for a pull request.

Public surface: `diff` (`autoscaler diff`: simulate the old and new policies side by side),
`runs` (the paired simulations), `verdict` (better, worse or unchanged per pool), `report`
(markdown and JSON answers), `source` (policies at a git revision) and `annotations` (GitHub
check annotations for `autoscaler check`).
"""
