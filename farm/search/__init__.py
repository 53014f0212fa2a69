"""What to try: plans of candidates and the planners that draw them.

plans (the Plan protocol the scheduler and workers run; RoundPlan, CampaignPlan,
FixedPlan; SeenSchedules), planners (a candidate's planner as a value: its label is
written and parsed there only).
May import: candidate, model (weights), and the foundation.
"""
