"""aimark.labels"""
