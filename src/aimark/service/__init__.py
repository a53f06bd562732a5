"""aimark.service"""
