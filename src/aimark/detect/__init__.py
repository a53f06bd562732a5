"""aimark.detect"""
