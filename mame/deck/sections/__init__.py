"""What each stage's slides say, computed from the runs' metrics.json (one module per stage, ``registry``
lining them up), and the slides every section shares (setup, dataset, history, settings, ladders, fixed against
variable shape).
"""
