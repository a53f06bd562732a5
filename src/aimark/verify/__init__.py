"""aimark.verify"""
