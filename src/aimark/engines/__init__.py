"""aimark.engines"""
