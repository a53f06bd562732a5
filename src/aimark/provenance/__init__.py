"""aimark.provenance"""
