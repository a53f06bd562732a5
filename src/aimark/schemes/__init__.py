"""aimark.schemes"""
