"""The promotion decision: is the candidate strictly better than the champion?"""
