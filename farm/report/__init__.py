"""What a researcher reads: tables, plots, the page, progress on the terminal.

text (`farm report`'s tables and plots), page (the self-contained HTML page), progress
(the live line), output (aligned tables, figures written atomically), comparison (a
comparison's rows, table and plot).
May import: execution (progress follows the scheduler's counts; a comparison's values),
store, stats and the foundation.
"""
