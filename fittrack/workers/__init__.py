"""The workers' loops: the persister (readings into the metric store), the dispatcher (notifications
stored and pushed) and the goal evaluator. Each runs inside the embedded server or as its own production
process (fittrack/app/persister.py, dispatcher.py, evaluator.py).
"""
