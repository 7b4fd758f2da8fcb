"""The configuration: the structured schemas (one module per config group), key names and renames,
composing one option of a group, plugin config trees and schemas, and the entry-point registry.
"""
