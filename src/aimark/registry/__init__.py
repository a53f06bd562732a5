"""aimark.registry"""
